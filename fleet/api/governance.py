"""The governance platform's status callbacks: ``POST /api/v1/governance/callbacks``.

No bearer token: the platform signs every callback (:mod:`protocol.request_signing`) with a secret it
shares with the fleet (``governance.signing_secrets``), and that signature is checked first, against the
body and the request target exactly as received, within the replay window; an exact replay is refused.
Then the body is decoded strictly and the callback taken (:class:`~fleet.alerts.callbacks.CaseCallbacks`).

Answers: 204 taken (or a repeat of one taken); 401 unsigned, badly signed or replayed; 422 not a
callback; 404 unknown alert or case; 409 not allowed in the alert's state (recorded, not to be resent);
503 too early (a callback before it is missing, or the case not recorded yet: send it again later).
"""

import logging

from fastapi import APIRouter, Request, Response, status

from fleet.api.context import Context
from fleet.errors import InvalidRequestError, NotAuthenticatedError
from protocol.errors import GovernancePayloadError, RequestSignatureError
from protocol.governance import CASE_CALLBACK_PATH, decode_case_callback
from protocol.request_signing import asgi_request_target

logger = logging.getLogger(__name__)

router = APIRouter(tags=["governance"])


@router.post(
    CASE_CALLBACK_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        401: {"description": "Unsigned, wrongly signed, outside the replay window, or a replay"},
        429: {"description": "Too many calls from this address: retry after Retry-After seconds"},
        404: {"description": "No such alert or case"},
        409: {"description": "The alert's state does not allow this step (recorded; do not resend)"},
        422: {"description": "Not a case callback"},
        503: {"description": "Too early: an earlier callback is missing, or the case is not recorded yet"},
    },
)
async def case_callback(ctx: Context, request: Request) -> Response:
    """A signed status callback from the governance platform (a `CaseCallback`: dispatched, resolved,
    feedback, closed), de-duplicated by `callback_id` and applied in `sequence` order."""
    body = await request.body()
    scope = request.scope
    target = asgi_request_target(scope.get("raw_path") or scope["path"].encode(), scope.get("query_string", b""))
    try:
        ctx.callback_verifier.verify(request.headers, "POST", target, body, ctx.clock())
    except RequestSignatureError as exc:
        logger.warning("governance callback refused (%s): %s", exc.reason, exc)
        raise NotAuthenticatedError(f"{exc.reason}: {exc}") from exc
    try:
        callback = decode_case_callback(body)
    except GovernancePayloadError as exc:
        logger.warning("governance callback refused: %s", str(exc)[:300])
        raise InvalidRequestError(str(exc)) from exc
    await ctx.callbacks.take(callback)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
