from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..models.runtime_kind import RuntimeKind
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.create_sandbox_request_secrets import CreateSandboxRequestSecrets
    from ..models.repo_source import RepoSource


T = TypeVar("T", bound="CreateSandboxRequest")


@_attrs_define
class CreateSandboxRequest:
    """`POST /v1/sandboxes`: from an image, or (fork) from a snapshot.

    Attributes:
        cpus (float | None | Unset): CPU limit in cores (default 1).
        disk (None | str | Unset): Disk limit such as `512M` or `10G`: what the sandbox may write into its root
            filesystem beyond the image (or snapshot) it starts from, kept across stop, start,
            restore and cairnd restarts. A write over it fails inside with `EDQUOT` ("Disk quota
            exceeded"). Default: a fork takes its snapshot's sandbox's, otherwise cairnd's
            `--default-disk`; at most cairnd's `--max-disk`.
        env (list[str] | Unset): Environment, `KEY=VALUE`.
        fresh (bool | Unset): With a stateful `from_snapshot`: boot fresh on its files instead of resuming its
            processes.
        from_snapshot (None | str | Unset): Fork: start from this snapshot's files (its id, `NAME` or `SANDBOX:NAME`),
            with its
            image, runtime and resources unless overridden here.
        idle_timeout (None | str | Unset): Pause the sandbox (with an automatic snapshot) after this long without exec
            or other
            use (inspecting or listing it does not count): `90s`, `30m`, `2h`. The next exec
            resumes it (its `pause_reason` is then `idle`).
        image (str | Unset): Image name (see `GET /v1/images`); leave empty with `from_snapshot`.
        memory (None | str | Unset): Memory limit such as `512M` or `2G` (default 512M).
        name (None | str | Unset): Optional name, unique per account.
        network (None | str | Unset): `none` (loopback only) or `nat` (own address, NAT to the outside). Default:
            `none`,
            or `nat` when `publish` is given; a fork takes its snapshot's.
        pids_limit (int | None | Unset): Maximum number of processes (default 1024).
        publish (list[str] | Unset): Ports to publish on the host's 127.0.0.1, as `HOSTPORT:PORT` (e.g. `8080:80`);
            needs `nat`.
        repo (None | RepoSource | Unset):
        runtime (None | RuntimeKind | Unset):
        secrets (CreateSandboxRequestSecrets | Unset): Secrets, `NAME` → value: files in the sandbox's `/run/secrets` (a
            tmpfs, mode 0400,
            owner root) and, with an exec's `secret_env`, variables. Stored sealed, never shown,
            removed before every snapshot and given back after it, a restore or a fork. Needs
            the agent. Names: a letter or `_`, then letters, digits or `_` (at most 64); at most
            32 secrets of at most 64 KiB each.
        template (None | str | Unset): Start from one of your templates (a fork of its snapshot, with its environment
            and
            working directory under the request's). Not with `image` or `from_snapshot`.
        workdir (None | str | Unset): Default working directory (absolute; default `/`).
    """

    cpus: float | None | Unset = UNSET
    disk: None | str | Unset = UNSET
    env: list[str] | Unset = UNSET
    fresh: bool | Unset = UNSET
    from_snapshot: None | str | Unset = UNSET
    idle_timeout: None | str | Unset = UNSET
    image: str | Unset = UNSET
    memory: None | str | Unset = UNSET
    name: None | str | Unset = UNSET
    network: None | str | Unset = UNSET
    pids_limit: int | None | Unset = UNSET
    publish: list[str] | Unset = UNSET
    repo: None | RepoSource | Unset = UNSET
    runtime: None | RuntimeKind | Unset = UNSET
    secrets: CreateSandboxRequestSecrets | Unset = UNSET
    template: None | str | Unset = UNSET
    workdir: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.repo_source import RepoSource

        cpus: float | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        disk: None | str | Unset
        if isinstance(self.disk, Unset):
            disk = UNSET
        else:
            disk = self.disk

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        fresh = self.fresh

        from_snapshot: None | str | Unset
        if isinstance(self.from_snapshot, Unset):
            from_snapshot = UNSET
        else:
            from_snapshot = self.from_snapshot

        idle_timeout: None | str | Unset
        if isinstance(self.idle_timeout, Unset):
            idle_timeout = UNSET
        else:
            idle_timeout = self.idle_timeout

        image = self.image

        memory: None | str | Unset
        if isinstance(self.memory, Unset):
            memory = UNSET
        else:
            memory = self.memory

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network

        pids_limit: int | None | Unset
        if isinstance(self.pids_limit, Unset):
            pids_limit = UNSET
        else:
            pids_limit = self.pids_limit

        publish: list[str] | Unset = UNSET
        if not isinstance(self.publish, Unset):
            publish = self.publish

        repo: dict[str, Any] | None | Unset
        if isinstance(self.repo, Unset):
            repo = UNSET
        elif isinstance(self.repo, RepoSource):
            repo = self.repo.to_dict()
        else:
            repo = self.repo

        runtime: None | str | Unset
        if isinstance(self.runtime, Unset):
            runtime = UNSET
        elif isinstance(self.runtime, RuntimeKind):
            runtime = self.runtime.value
        else:
            runtime = self.runtime

        secrets: dict[str, Any] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets.to_dict()

        template: None | str | Unset
        if isinstance(self.template, Unset):
            template = UNSET
        else:
            template = self.template

        workdir: None | str | Unset
        if isinstance(self.workdir, Unset):
            workdir = UNSET
        else:
            workdir = self.workdir

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if disk is not UNSET:
            field_dict["disk"] = disk
        if env is not UNSET:
            field_dict["env"] = env
        if fresh is not UNSET:
            field_dict["fresh"] = fresh
        if from_snapshot is not UNSET:
            field_dict["from_snapshot"] = from_snapshot
        if idle_timeout is not UNSET:
            field_dict["idle_timeout"] = idle_timeout
        if image is not UNSET:
            field_dict["image"] = image
        if memory is not UNSET:
            field_dict["memory"] = memory
        if name is not UNSET:
            field_dict["name"] = name
        if network is not UNSET:
            field_dict["network"] = network
        if pids_limit is not UNSET:
            field_dict["pids_limit"] = pids_limit
        if publish is not UNSET:
            field_dict["publish"] = publish
        if repo is not UNSET:
            field_dict["repo"] = repo
        if runtime is not UNSET:
            field_dict["runtime"] = runtime
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if template is not UNSET:
            field_dict["template"] = template
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.create_sandbox_request_secrets import CreateSandboxRequestSecrets
        from ..models.repo_source import RepoSource

        d = dict(src_dict)

        def _parse_cpus(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        cpus = _parse_cpus(d.pop("cpus", UNSET))

        def _parse_disk(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        disk = _parse_disk(d.pop("disk", UNSET))

        env = cast(list[str], d.pop("env", UNSET))

        fresh = d.pop("fresh", UNSET)

        def _parse_from_snapshot(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        from_snapshot = _parse_from_snapshot(d.pop("from_snapshot", UNSET))

        def _parse_idle_timeout(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        idle_timeout = _parse_idle_timeout(d.pop("idle_timeout", UNSET))

        image = d.pop("image", UNSET)

        def _parse_memory(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        memory = _parse_memory(d.pop("memory", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))

        def _parse_pids_limit(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pids_limit = _parse_pids_limit(d.pop("pids_limit", UNSET))

        publish = cast(list[str], d.pop("publish", UNSET))

        def _parse_repo(data: object) -> None | RepoSource | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                repo_type_1 = RepoSource.from_dict(data)

                return repo_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RepoSource | Unset, data)

        repo = _parse_repo(d.pop("repo", UNSET))

        def _parse_runtime(data: object) -> None | RuntimeKind | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                runtime_type_1 = RuntimeKind(data)

                return runtime_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RuntimeKind | Unset, data)

        runtime = _parse_runtime(d.pop("runtime", UNSET))

        _secrets = d.pop("secrets", UNSET)
        secrets: CreateSandboxRequestSecrets | Unset
        if isinstance(_secrets, Unset):
            secrets = UNSET
        else:
            secrets = CreateSandboxRequestSecrets.from_dict(_secrets)

        def _parse_template(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        template = _parse_template(d.pop("template", UNSET))

        def _parse_workdir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workdir = _parse_workdir(d.pop("workdir", UNSET))

        create_sandbox_request = cls(
            cpus=cpus,
            disk=disk,
            env=env,
            fresh=fresh,
            from_snapshot=from_snapshot,
            idle_timeout=idle_timeout,
            image=image,
            memory=memory,
            name=name,
            network=network,
            pids_limit=pids_limit,
            publish=publish,
            repo=repo,
            runtime=runtime,
            secrets=secrets,
            template=template,
            workdir=workdir,
        )

        return create_sandbox_request
