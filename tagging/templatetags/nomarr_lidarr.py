"""The dashboard's "refused Lidarr paths" block: `{% load nomarr_lidarr %}{% lidarr_refusals %}`.

Shown to staff only (the paths may lie outside the library, and the fix is theirs); the
refusals themselves are tagging.lidarr's (`recent_refusals`)."""

from django import template

from tagging import lidarr

register = template.Library()


@register.inclusion_tag("tagging/_lidarr_refused.html", takes_context=True)
def lidarr_refusals(context) -> dict:
    user = getattr(context.get("request"), "user", None)
    staff = bool(user is not None and user.is_staff)
    return {"refusals": lidarr.recent_refusals() if staff else []}
