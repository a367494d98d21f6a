"""Splunk SOAR app: Microsoft Defender for Endpoint alerts for a file, on top of ``mde_file_alerts``."""
