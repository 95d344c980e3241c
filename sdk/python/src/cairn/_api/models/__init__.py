"""Contains all the data models used in inputs/outputs"""

from .account_network import AccountNetwork
from .attach_eof import AttachEof
from .attach_eof_type import AttachEofType
from .attach_request import AttachRequest
from .attach_resize import AttachResize
from .attach_resize_type import AttachResizeType
from .create_sandbox_request import CreateSandboxRequest
from .create_sandbox_request_secrets import CreateSandboxRequestSecrets
from .create_snapshot_request import CreateSnapshotRequest
from .create_template_request import CreateTemplateRequest
from .diff_entry import DiffEntry
from .dropped_files import DroppedFiles
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .exec_error import ExecError
from .exec_error_type import ExecErrorType
from .exec_exit import ExecExit
from .exec_exit_type import ExecExitType
from .exec_request import ExecRequest
from .exec_started import ExecStarted
from .exec_started_type import ExecStartedType
from .exec_stderr import ExecStderr
from .exec_stderr_type import ExecStderrType
from .exec_stdout import ExecStdout
from .exec_stdout_type import ExecStdoutType
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
from .progress_error import ProgressError
from .progress_error_type import ProgressErrorType
from .progress_report import ProgressReport
from .progress_report_type import ProgressReportType
from .progress_result import ProgressResult
from .progress_result_type import ProgressResultType
from .progress_unit import ProgressUnit
from .pruned_steps import PrunedSteps
from .publish_image_request import PublishImageRequest
from .published_port import PublishedPort
from .pull_image_request import PullImageRequest
from .pull_report import PullReport
from .push_info import PushInfo
from .registry_login_request import RegistryLoginRequest
from .remote_delete_info import RemoteDeleteInfo
from .remote_snapshot_info import RemoteSnapshotInfo
from .repo_source import RepoSource
from .restore_request import RestoreRequest
from .runtime_kind import RuntimeKind
from .sandbox_info import SandboxInfo
from .sandbox_state import SandboxState
from .signal_request import SignalRequest
from .snapshot_info import SnapshotInfo
from .snapshot_link_info import SnapshotLinkInfo
from .snapshot_state import SnapshotState
from .template_info import TemplateInfo
from .template_step import TemplateStep
from .update_account_network import UpdateAccountNetwork

__all__ = (
    "AccountNetwork",
    "AttachEof",
    "AttachEofType",
    "AttachRequest",
    "AttachResize",
    "AttachResizeType",
    "CreateSandboxRequest",
    "CreateSandboxRequestSecrets",
    "CreateSnapshotRequest",
    "CreateTemplateRequest",
    "DiffEntry",
    "DroppedFiles",
    "ErrorBody",
    "ErrorDetail",
    "ExecError",
    "ExecErrorType",
    "ExecExit",
    "ExecExitType",
    "ExecRequest",
    "ExecStarted",
    "ExecStartedType",
    "ExecStderr",
    "ExecStderrType",
    "ExecStdout",
    "ExecStdoutType",
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
    "ProgressError",
    "ProgressErrorType",
    "ProgressReport",
    "ProgressReportType",
    "ProgressResult",
    "ProgressResultType",
    "ProgressUnit",
    "PrunedSteps",
    "PublishImageRequest",
    "PublishedPort",
    "PullImageRequest",
    "PullReport",
    "PushInfo",
    "RegistryLoginRequest",
    "RemoteDeleteInfo",
    "RemoteSnapshotInfo",
    "RepoSource",
    "RestoreRequest",
    "RuntimeKind",
    "SandboxInfo",
    "SandboxState",
    "SignalRequest",
    "SnapshotInfo",
    "SnapshotLinkInfo",
    "SnapshotState",
    "TemplateInfo",
    "TemplateStep",
    "UpdateAccountNetwork",
)
