"""The API's base view: rate limits checked before permissions."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView


class RateLimitedApiView(APIView):
    """An ``APIView`` whose throttles run before its permission checks.

    DRF checks permissions first, so a request it refuses (401, 403) would be neither
    counted nor told its limit state. Here every request that reaches an API view counts
    once, after authentication (a signed-in client counts as its user), and its
    response carries the RateLimit fields whatever it is.
    """

    # Per view instance, i.e. per request: the browsable renderer checks permissions
    # again for each form it considers, which must not count the request again.
    throttles_checked = False

    def check_permissions(self, request: Request) -> None:
        """Check the throttles once, then the permissions."""
        if not self.throttles_checked:
            self.throttles_checked = True
            super().check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        """Do nothing: ``check_permissions`` has checked the throttles already."""
