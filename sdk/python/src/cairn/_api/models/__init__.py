"""Contains all the data models used in inputs/outputs"""

from .account_network import AccountNetwork
from .attach_control_type_0 import AttachControlType0
from .attach_control_type_0_type import AttachControlType0Type
from .attach_control_type_1 import AttachControlType1
from .attach_control_type_1_type import AttachControlType1Type
from .attach_request import AttachRequest
from .create_sandbox_request import CreateSandboxRequest
from .create_sandbox_request_secrets import CreateSandboxRequestSecrets
from .create_snapshot_request import CreateSnapshotRequest
from .diff_entry import DiffEntry
from .dropped_files import DroppedFiles
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .exec_event_type_0 import ExecEventType0
from .exec_event_type_0_type import ExecEventType0Type
from .exec_event_type_1 import ExecEventType1
from .exec_event_type_1_type import ExecEventType1Type
from .exec_event_type_2 import ExecEventType2
from .exec_event_type_2_type import ExecEventType2Type
from .exec_event_type_3 import ExecEventType3
from .exec_event_type_3_type import ExecEventType3Type
from .exec_event_type_4 import ExecEventType4
from .exec_event_type_4_type import ExecEventType4Type
from .exec_request import ExecRequest
from .file_entry import FileEntry
from .fork_batch import ForkBatch
from .fork_request import ForkRequest
from .fork_request_secrets import ForkRequestSecrets
from .image_info import ImageInfo
from .import_image_request import ImportImageRequest
from .mkdir_request import MkdirRequest
from .move_request import MoveRequest
from .network_mode import NetworkMode
from .pause_reason import PauseReason
from .process_info import ProcessInfo
from .publish_image_request import PublishImageRequest
from .published_port import PublishedPort
from .push_info import PushInfo
from .remote_snapshot_info import RemoteSnapshotInfo
from .restore_request import RestoreRequest
from .runtime_kind import RuntimeKind
from .sandbox_info import SandboxInfo
from .sandbox_state import SandboxState
from .signal_request import SignalRequest
from .snapshot_info import SnapshotInfo
from .snapshot_link_info import SnapshotLinkInfo
from .snapshot_state import SnapshotState
from .update_account_network import UpdateAccountNetwork

__all__ = (
    "AccountNetwork",
    "AttachControlType0",
    "AttachControlType0Type",
    "AttachControlType1",
    "AttachControlType1Type",
    "AttachRequest",
    "CreateSandboxRequest",
    "CreateSandboxRequestSecrets",
    "CreateSnapshotRequest",
    "DiffEntry",
    "DroppedFiles",
    "ErrorBody",
    "ErrorDetail",
    "ExecEventType0",
    "ExecEventType0Type",
    "ExecEventType1",
    "ExecEventType1Type",
    "ExecEventType2",
    "ExecEventType2Type",
    "ExecEventType3",
    "ExecEventType3Type",
    "ExecEventType4",
    "ExecEventType4Type",
    "ExecRequest",
    "FileEntry",
    "ForkBatch",
    "ForkRequest",
    "ForkRequestSecrets",
    "ImageInfo",
    "ImportImageRequest",
    "MkdirRequest",
    "MoveRequest",
    "NetworkMode",
    "PauseReason",
    "ProcessInfo",
    "PublishImageRequest",
    "PublishedPort",
    "PushInfo",
    "RemoteSnapshotInfo",
    "RestoreRequest",
    "RuntimeKind",
    "SandboxInfo",
    "SandboxState",
    "SignalRequest",
    "SnapshotInfo",
    "SnapshotLinkInfo",
    "SnapshotState",
    "UpdateAccountNetwork",
)
