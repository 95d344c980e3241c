from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.image_info import ImageInfo
from ...models.import_image_request import ImportImageRequest
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    *,
    body: ImportImageRequest | File | Unset = UNSET,
    name: str | Unset = UNSET,
    public: bool | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    params["name"] = name

    params["public"] = public

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/images",
        "params": params,
    }

    if isinstance(body, ImportImageRequest):
        _kwargs["json"] = body.to_dict()

        headers["Content-Type"] = "application/json"
    if isinstance(body, File):
        _kwargs["content"] = body.payload
        headers["Content-Type"] = "application/octet-stream"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | ImageInfo | None:
    if response.status_code == 201:
        response_201 = ImageInfo.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if response.status_code == 507:
        response_507 = ErrorBody.from_dict(response.json())

        return response_507

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | ImageInfo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: ImportImageRequest | File | Unset = UNSET,
    name: str | Unset = UNSET,
    public: bool | Unset = UNSET,
) -> Response[ErrorBody | ImageInfo]:
    """Import an image. Two forms: - the request body is the archive (a root filesystem tarball, an OCI
    image archive or a `docker save` archive; plain, gzip or zstd) and `?name=NAME` names the image: any
    account; - `Content-Type: application/json` with an `ImportImageRequest`: a path on the daemon's
    host, for the operator only (403 otherwise); never a path inside the data directory.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead (once an
    upload has been read whole), one `ProgressEvent` per line: `progress` lines of phase
    `unpack` (stored bytes of the layers, or of the archive, applied of their total), then
    one `result` (status 201 and the image) or `error` (the status and error listed here).

    Args:
        name (str | Unset):
        public (bool | Unset):
        body (ImportImageRequest): `POST /v1/images` with a JSON body (the operator only): import
            a root filesystem
            directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
            OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
            request body instead (`POST /v1/images?name=NAME`).
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ImageInfo]
    """

    kwargs = _get_kwargs(
        body=body,
        name=name,
        public=public,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: ImportImageRequest | File | Unset = UNSET,
    name: str | Unset = UNSET,
    public: bool | Unset = UNSET,
) -> ErrorBody | ImageInfo | None:
    """Import an image. Two forms: - the request body is the archive (a root filesystem tarball, an OCI
    image archive or a `docker save` archive; plain, gzip or zstd) and `?name=NAME` names the image: any
    account; - `Content-Type: application/json` with an `ImportImageRequest`: a path on the daemon's
    host, for the operator only (403 otherwise); never a path inside the data directory.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead (once an
    upload has been read whole), one `ProgressEvent` per line: `progress` lines of phase
    `unpack` (stored bytes of the layers, or of the archive, applied of their total), then
    one `result` (status 201 and the image) or `error` (the status and error listed here).

    Args:
        name (str | Unset):
        public (bool | Unset):
        body (ImportImageRequest): `POST /v1/images` with a JSON body (the operator only): import
            a root filesystem
            directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
            OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
            request body instead (`POST /v1/images?name=NAME`).
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ImageInfo
    """

    return sync_detailed(
        client=client,
        body=body,
        name=name,
        public=public,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: ImportImageRequest | File | Unset = UNSET,
    name: str | Unset = UNSET,
    public: bool | Unset = UNSET,
) -> Response[ErrorBody | ImageInfo]:
    """Import an image. Two forms: - the request body is the archive (a root filesystem tarball, an OCI
    image archive or a `docker save` archive; plain, gzip or zstd) and `?name=NAME` names the image: any
    account; - `Content-Type: application/json` with an `ImportImageRequest`: a path on the daemon's
    host, for the operator only (403 otherwise); never a path inside the data directory.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead (once an
    upload has been read whole), one `ProgressEvent` per line: `progress` lines of phase
    `unpack` (stored bytes of the layers, or of the archive, applied of their total), then
    one `result` (status 201 and the image) or `error` (the status and error listed here).

    Args:
        name (str | Unset):
        public (bool | Unset):
        body (ImportImageRequest): `POST /v1/images` with a JSON body (the operator only): import
            a root filesystem
            directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
            OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
            request body instead (`POST /v1/images?name=NAME`).
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ImageInfo]
    """

    kwargs = _get_kwargs(
        body=body,
        name=name,
        public=public,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: ImportImageRequest | File | Unset = UNSET,
    name: str | Unset = UNSET,
    public: bool | Unset = UNSET,
) -> ErrorBody | ImageInfo | None:
    """Import an image. Two forms: - the request body is the archive (a root filesystem tarball, an OCI
    image archive or a `docker save` archive; plain, gzip or zstd) and `?name=NAME` names the image: any
    account; - `Content-Type: application/json` with an `ImportImageRequest`: a path on the daemon's
    host, for the operator only (403 otherwise); never a path inside the data directory.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead (once an
    upload has been read whole), one `ProgressEvent` per line: `progress` lines of phase
    `unpack` (stored bytes of the layers, or of the archive, applied of their total), then
    one `result` (status 201 and the image) or `error` (the status and error listed here).

    Args:
        name (str | Unset):
        public (bool | Unset):
        body (ImportImageRequest): `POST /v1/images` with a JSON body (the operator only): import
            a root filesystem
            directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
            OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
            request body instead (`POST /v1/images?name=NAME`).
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ImageInfo
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            name=name,
            public=public,
        )
    ).parsed
