"""The browser pages: a day's timeline with a player, and live view.

Plain HTML shells with their scripts and styles as separate files (the CSP allows only
'self'); they hold no data: every camera, span and frame comes from the JSON API, which
checks the session. Static files are served under /assets/ (hls.js is vendored there;
the box has no internet and no CDN).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/assets")


@pages.get("/")
def home():
    return redirect(url_for("pages.timeline_page"))


@pages.get("/timeline")
def timeline_page():
    return render_template("timeline.html", page="timeline")


@pages.get("/live")
def live_page():
    return render_template("live.html", page="live")
