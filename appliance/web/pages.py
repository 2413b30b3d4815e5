"""The browser pages: a day's timeline with a player, and live view.

Plain HTML shells with their scripts and styles as separate files (the CSP allows only
'self'); they hold no data: every camera, span and frame comes from the JSON API, which
checks the session. Static files are served under /assets/ (hls.js is vendored there;
the box has no internet and no CDN).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from appliance.web.security import accounts

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/assets")


@pages.get("/")
def home():
    """A new box opens on the setup wizard; a set-up one on live view."""
    if not _setup_finished():
        return redirect(url_for("pages.setup_page"))
    return redirect(url_for("pages.live_page"))


def _setup_finished() -> bool:
    store = accounts()
    return not store.setup_needed() and store.wizard_state()["finished"] is not None


@pages.get("/setup")
def setup_page():
    """The first-boot wizard; once finished it cannot be entered again."""
    if _setup_finished():
        return redirect(url_for("pages.live_page"))
    return render_template("setup.html", page="setup")


@pages.get("/timeline")
def timeline_page():
    return render_template("timeline.html", page="timeline")


@pages.get("/live")
def live_page():
    return render_template("live.html", page="live")


@pages.get("/cameras")
def cameras_page():
    return render_template("cameras.html", page="cameras")


@pages.get("/poe")
def poe_page():
    return render_template("poe.html", page="poe")


@pages.get("/storage")
def storage_page():
    return render_template("storage.html", page="storage")


@pages.get("/alerts")
def alerts_page():
    return render_template("alerts.html", page="alerts")


@pages.get("/users")
def users_page():
    return render_template("users.html", page="users")


@pages.get("/system")
def system_page():
    return render_template("system.html", page="system")


@pages.get("/login")
def login_page():
    return render_template("login.html", page="login")


@pages.get("/licence")
def licence_page():
    return render_template("licence.html", page="licence")


@pages.get("/update")
def update_page():
    return render_template("update.html", page="update")


@pages.get("/integrations")
def integrations_page():
    return render_template("integrations.html", page="integrations")
