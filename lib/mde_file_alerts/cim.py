"""Every field name and fixed value the app's events carry, in one place.

The CIM names follow Splunk's Alerts data model and the way Splunk's Microsoft Security add-on
already maps Defender for Endpoint alerts (sourcetype ``ms:defender:atp:alerts``), so Enterprise
Security content written for that add-on works on our events. Everything the app adds on top is
prefixed ``mde_``. ``default/props.conf`` computes the CIM fields from ``_raw`` for events that
are indexed; tests check that it uses these names and values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# --- Splunk metadata -----------------------------------------------------------------------------

TIME = "_time"
RAW = "_raw"
SOURCE = "source"
SOURCETYPE = "sourcetype"
HOST = "host"

#: The Microsoft Security add-on's sourcetype for these alerts; ES content searches for it.
SOURCETYPE_ALERT = "ms:defender:atp:alerts"
#: For JSON values in a response that are not Defender alerts, so that neither the add-on's nor
#: our search-time mapping (nor ES) ever treats them as one.
SOURCETYPE_NOT_AN_ALERT = "mde_file_alerts:not_an_alert"
#: Every event's source starts with this; props.conf and eventtypes.conf match on it.
SOURCE_SCHEME = "mde_file_alerts://"

# --- CIM Alerts (and the file fields of Malware/Endpoint) ------------------------------------------

APP = "app"
TYPE = "type"
ID = "id"
SIGNATURE = "signature"
SIGNATURE_ID = "signature_id"
SUBJECT = "subject"
BODY = "body"
DESCRIPTION = "description"
SEVERITY = "severity"
SEVERITY_ID = "severity_id"
SRC = "src"
DEST = "dest"
USER = "user"
USER_NAME = "user_name"
MITRE_TECHNIQUE_ID = "mitre_technique_id"
VENDOR = "vendor"
VENDOR_PRODUCT = "vendor_product"
VENDOR_ACCOUNT = "vendor_account"
FILE_HASH = "file_hash"
FILE_NAME = "file_name"
FILE_PATH = "file_path"

APP_VALUE = "ms:defender"
TYPE_VALUE = "alert"
VENDOR_VALUE = "Microsoft"
VENDOR_PRODUCT_VALUE = "Microsoft Defender for Endpoint"

#: Defender severity → CIM severity. CIM has no "unspecified"; its word for that is "unknown".
SEVERITIES: Mapping[str, str] = MappingProxyType(
    {
        "UnSpecified": "unknown",
        "Informational": "informational",
        "Low": "low",
        "Medium": "medium",
        "High": "high",
    }
)
#: Defender severity → severity_id, on the OCSF scale (0 unknown, 1 informational, 2 low,
#: 3 medium, 4 high; OCSF's 5 critical and 6 fatal have no Defender counterpart).
SEVERITY_IDS: Mapping[str, int] = MappingProxyType(
    {"UnSpecified": 0, "Informational": 1, "Low": 2, "Medium": 3, "High": 4}
)

# --- the alert, flattened for filtering ------------------------------------------------------------

ALERT_URL = "mde_alert_url"
STATUS = "mde_status"
CLASSIFICATION = "mde_classification"
DETERMINATION = "mde_determination"
CATEGORY = "mde_category"
DETECTION_SOURCE = "mde_detection_source"
DETECTOR_ID = "mde_detector_id"
THREAT_NAME = "mde_threat_name"
THREAT_FAMILY_NAME = "mde_threat_family_name"
INVESTIGATION_ID = "mde_investigation_id"
INVESTIGATION_STATE = "mde_investigation_state"
INCIDENT_ID = "mde_incident_id"
ASSIGNED_TO = "mde_assigned_to"
RBAC_GROUP_NAME = "mde_rbac_group_name"
MACHINE_ID = "mde_machine_id"
COMPUTER_DNS_NAME = "mde_computer_dns_name"
RELATED_USER_DOMAIN = "mde_related_user_domain"
LOGGED_ON_USERS = "mde_logged_on_users"
ALERT_CREATION_TIME = "mde_alert_creation_time"
FIRST_EVENT_TIME = "mde_first_event_time"
LAST_EVENT_TIME = "mde_last_event_time"
LAST_UPDATE_TIME = "mde_last_update_time"
RESOLVED_TIME = "mde_resolved_time"
#: Which timestamp ``_time`` came from: one of the TIME_SOURCE_* values below.
TIME_SOURCE = "mde_time_source"
COMMENT_COUNT = "mde_comment_count"
EVIDENCE_COUNT = "mde_evidence_count"
EVIDENCE_ENTITY_TYPES = "mde_evidence_entity_types"
EVIDENCE_SHA1 = "mde_evidence_sha1"
EVIDENCE_SHA256 = "mde_evidence_sha256"
EVIDENCE_FILE_NAMES = "mde_evidence_file_names"
EVIDENCE_PROCESS_COMMAND_LINES = "mde_evidence_process_command_lines"
EVIDENCE_USERS = "mde_evidence_users"
EVIDENCE_IPS = "mde_evidence_ips"
EVIDENCE_URLS = "mde_evidence_urls"
EVIDENCE_DETECTION_STATUSES = "mde_evidence_detection_statuses"

TIME_SOURCE_ALERT_CREATION = "alertCreationTime"
TIME_SOURCE_FIRST_EVENT = "firstEventTime"
TIME_SOURCE_LAST_UPDATE = "lastUpdateTime"
TIME_SOURCE_RETRIEVED = "retrieved_at"

# --- provenance: on every event ---------------------------------------------------------------------

QUERIED_HASH = "mde_queried_hash"
QUERIED_SHA256 = "mde_queried_sha256"
ACCOUNT = "mde_account"
CLOUD = "mde_cloud"
API_HOST = "mde_api_host"
RETRIEVED_AT = "mde_retrieved_at"
SCHEMA = "mde_schema"
SCHEMA_ERRORS = "mde_schema_errors"
UNKNOWN_KEYS = "mde_unknown_keys"
APP_VERSION = "mde_app_version"

# --- the per-hash status record (CLI ``lookup``) --------------------------------------------------

STATUS_FOR = "mde_status_for"
STATUS_VALUE = "status"
STATUS_MESSAGE = "message"
STATUS_SHA1 = "mde_sha1"
STATUS_SHA256 = "mde_sha256"
STATUS_ALERT_COUNT = "mde_alert_count"
STATUS_REJECTED_COUNT = "mde_rejected_count"
STATUS_CORRELATION_ID = "mde_correlation_id"

# --- enrichment: what ``... | mdefilealerts field=<hash field>`` adds to every event ----------------
# Two of its fields share their names (and meaning) with fields above: ``STATUS`` (mde_status) holds
# the lookup's status (found, not_found, invalid_hash, throttled, error, not_looked_up), and
# ``STATUS_ALERT_COUNT`` (mde_alert_count) the file's number of alerts. In ``expand=true`` rows that
# carry an alert, mde_status is that alert's own status (New, InProgress, Resolved), exactly as in
# ``| mdefilealerts hash=...`` output.

#: One sentence about the lookup: why a value was not usable, why a lookup failed, or what was found.
LOOKUP_MESSAGE = "mde_message"
#: Alerts whose status is not Resolved.
OPEN_ALERT_COUNT = "mde_open_alert_count"
#: The highest CIM severity (unknown < informational < low < medium < high) of all alerts, and of
#: the open ones only.
MAX_SEVERITY = "mde_max_severity"
MAX_OPEN_SEVERITY = "mde_max_open_severity"
ALERT_IDS = "mde_alert_ids"
ALERT_TITLES = "mde_alert_titles"
ALERT_STATUSES = "mde_alert_statuses"
ALERT_TECHNIQUES = "mde_mitre_technique_id"
#: The devices Defender raised the alerts on (DNS name, else machine id).
ALERT_DEVICES = "mde_alert_devices"
#: The newest alertCreationTime, ISO 8601 UTC.
LAST_ALERT_TIME = "mde_last_alert_time"
#: On every record of both modes: hit (answered from the result cache), miss (Defender was
#: asked), bypass (the cache was not consulted: cache=false, or a value that is never looked up).
CACHE = "mde_cache"
CACHE_HIT_VALUE = "hit"
CACHE_MISS_VALUE = "miss"
CACHE_BYPASS_VALUE = "bypass"
#: Defender's workflow status of a closed alert; every other status counts as open.
RESOLVED_STATUS_VALUE = "Resolved"

#: The CIM fields default/props.conf computes from ``_raw`` for indexed events (one EVAL-<field>
#: each). The provenance and file fields exist only in what the search command and CLI emit,
#: because they describe the lookup, which ``_raw`` (the alert as Defender sent it) does not hold.
RAW_DERIVED_FIELDS: tuple[str, ...] = (
    APP,
    TYPE,
    VENDOR,
    VENDOR_PRODUCT,
    SIGNATURE,
    SIGNATURE_ID,
    SUBJECT,
    BODY,
    SEVERITY,
    SEVERITY_ID,
    SRC,
    DEST,
    USER,
    USER_NAME,
    MITRE_TECHNIQUE_ID,
    VENDOR_ACCOUNT,
)
#: CIM fields whose name is already the alert's own JSON key, so KV_MODE=json alone yields them.
RAW_NATIVE_FIELDS: tuple[str, ...] = (ID, DESCRIPTION)
