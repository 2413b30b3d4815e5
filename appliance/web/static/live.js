// Live page: a grid of the cameras this user may see (GET /api/v1/cameras), 1, 4 or 9
// per page, and a single large view (?camera=<id>, the <video id="video">). Each <video>
// has its own LivePlayer: the camera's fragmented MP4 stream (GET
// /api/v1/cameras/<cam>/live.mp4: an init segment, then a fragment per frame) read with
// fetch and fed to Media Source Extensions, following the live edge, reconnecting with
// backoff, with its own counters.
//
// What one live picture costs: a server thread for as long as it plays (the box shares
// one camera connection between its viewers), a slot of the box's viewer limit
// (live.max_viewers_total: beyond it the box answers 429, and the tile says so and tries
// again later) and one of the browser's connections (HTTP/1.1: six per host, and a live
// stream holds one). So the grid plays at most MAX_STREAMS tiles at once, which leaves
// the browser connections for the API; the other tiles on the page say why they wait,
// and a click opens any of them large. A hidden tab lets every stream go.
// Camera labels are set with textContent only.
"use strict";

(() => {
  const { $ } = vigil;
  const TARGET_LAG = 0.15;     // seconds behind the newest frame we aim to play
  const CATCH_UP = 0.3;        // beyond this: play 10 % faster until back at the target
  const MAX_LAG = 1.0;         // beyond this (or at the start): jump to the live edge
  const KEEP_SECONDS = 20;     // buffered video kept behind the playhead
  const MAX_QUEUED = 8 << 20;  // bytes waiting for the SourceBuffer before we restart
  const RETRY_MS = [1000, 2000, 4000, 8000, 10000];   // the stream failed or ended
  const BUSY_MS = [3000, 5000, 10000, 20000, 30000];  // the box has no free live slot (429)
  const STEADY_MS = 30000;     // live this long: the next failure starts the backoff over
  const MAX_STREAMS = 4;       // live tiles at once (browser connections, the box's default)
  const LAYOUTS = [1, 4, 9];
  const DEFAULT_LAYOUT = 4;
  const REFRESH_MS = 10000;    // the camera list: labels and recording state
  const CAMERA_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
  const STATE_WORDS = {
    recording: "Recording", starting: "Starting", connecting: "Connecting",
    waiting_keyframe: "Starting", stopped: "Stopped", retrying: "Retrying",
    unreachable: "Unreachable", auth_failed: "Login refused", not_licensed: "Not licensed",
    stopped_disk_full: "Disk full", disk_error: "Disk error", unsupported: "Unsupported",
    disabled: "Disabled", waiting: "Waiting",
  };
  // Phases a player keeps by itself: play() leaves it alone in these.
  const ACTIVE = ["connecting", "live", "retrying", "busy", "failed"];

  // iPhones (Safari 17.1+) have only ManagedMediaSource, which works the same for us.
  const Source = window.MediaSource || window.ManagedMediaSource;

  const jitter = (ms) => Math.round(ms * (0.8 + 0.4 * Math.random()));

  /** One camera's live stream in one <video>: one MSE pipeline at a time. */
  class LivePlayer {
    constructor(video, { onChange = () => {}, onProgress = () => {} } = {}) {
      this.video = video;
      this.onChange = onChange;
      this.onProgress = onProgress;
      // What it is doing, for people (status) and for the browser tests.
      this.state = {
        camera: null, phase: "idle", status: "idle", codec: null, bytes: 0, chunks: 0,
        lag: null, reconnects: 0, busy: 0, error: null, jumps: 0, stalls: 0, retryAt: null,
        frames: [],  // [media time s, wall-clock ms when shown] of the last frames on screen
      };
      this.session = 0;       // bumps on every (re)start; stale loops notice and stop
      this.attempt = 0;       // index into the backoff schedule
      this.fresh = true;      // no frame shown yet since (re)connecting: start at the live edge
      this.controller = null;
      this.retryTimer = null;
      this.liveSince = 0;
      video.muted = true;
      video.playsInline = true;
      video.addEventListener("waiting", () => {
        if (this.state.phase !== "live" || video.seeking) return;
        this.state.stalls += 1;
        video.pause();  // ran out of video: wait for TARGET_LAG of it (followLiveEdge)
      });
      // When each frame reaches the screen, on the wall clock (for measuring latency).
      if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
        const onFrame = (_now, meta) => {
          const frames = this.state.frames;
          frames.push([meta.mediaTime, performance.timeOrigin + meta.presentationTime]);
          if (frames.length > 250) frames.shift();
          video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      }
    }

    /** Watch `camera`; nothing changes if it is already on it (or has given up on it),
     *  unless `force`. */
    play(camera, force = false) {
      if (!force && this.state.camera === camera && ACTIVE.includes(this.state.phase)) return;
      this.attempt = 0;
      this.state.camera = camera;
      this.connect();
    }

    /** Let the stream go (and its server thread); `phase` says why, for the page. */
    stop(status = "Stopped", phase = "stopped") {
      this.halt();
      this.set(phase, status);
    }

    set(phase, status, error = null) {
      Object.assign(this.state, { phase, status, error });
      this.onChange(this);
    }

    halt() {
      this.session += 1;
      clearTimeout(this.retryTimer);
      this.state.retryAt = null;
      this.liveSince = 0;
      if (this.controller) this.controller.abort();
      this.controller = null;
      if (this.video.hasAttribute("src")) {
        this.video.removeAttribute("src");
        this.video.load();
      }
    }

    /** Give the stream up now and try again after the backoff (longer when the box is
     *  full: its slot frees only when another viewer leaves). */
    retryLater(why, busy = false) {
      if (this.liveSince && performance.now() - this.liveSince > STEADY_MS) this.attempt = 0;
      this.halt();
      const schedule = busy ? BUSY_MS : RETRY_MS;
      const delay = jitter(schedule[Math.min(this.attempt, schedule.length - 1)]);
      this.attempt += 1;
      if (busy) this.state.busy += 1;
      else this.state.reconnects += 1;
      this.state.retryAt = Date.now() + delay;
      const mine = this.session;
      this.retryTimer = setTimeout(() => { if (mine === this.session) this.connect(); }, delay);
      this.set(busy ? "busy" : "retrying",
               `${why}. Next try in ${Math.max(1, Math.round(delay / 1000))} s.`, why);
    }

    async connect() {
      this.halt();
      const mine = this.session;
      const camera = this.state.camera;
      this.state.codec = null;
      this.set("connecting", "Connecting…");
      const controller = this.controller = new AbortController();
      let resp;
      try {
        resp = await fetch(`/api/v1/cameras/${encodeURIComponent(camera)}/live.mp4`,
                           { credentials: "same-origin", cache: "no-store", signal: controller.signal });
      } catch (err) {
        if (mine === this.session) this.retryLater("The box did not answer");
        return;
      }
      if (mine !== this.session) return;
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({}));
        if (mine !== this.session) return;
        vigil.leaveIfLoggedOut(resp.status, body.error);
        const err = Object.assign(new Error(body.error || `${resp.status} ${resp.statusText}`),
                                  { status: resp.status });
        const why = vigil.explain(err);
        if (resp.status === 429) this.retryLater(`Too many live viewers: ${why}`, true);
        else if (resp.status === 503) this.retryLater(why);
        else this.set("failed", why, why);  // 400/401/403/404: retrying will not help
        return;
      }
      const type = resp.headers.get("Content-Type") || "";
      this.state.codec = type;
      if (!Source || !Source.isTypeSupported(type)) {
        controller.abort();
        const why = Source
          ? `This browser cannot play ${type} (H.265 needs a browser with HEVC support).`
          : "This browser has no Media Source Extensions, which live view needs.";
        this.set("failed", why, why);
        return;
      }
      await this.pump(resp, type, mine);
    }

    async pump(resp, type, mine) {
      this.fresh = true;
      const video = this.video;
      const source = new Source();
      // ManagedMediaSource plays only with AirPlay off (or an alternative source given).
      if (Source !== window.MediaSource) video.disableRemotePlayback = true;
      const url = URL.createObjectURL(source);
      video.src = url;
      await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
      URL.revokeObjectURL(url);
      if (mine !== this.session) return;
      let buffer;
      try {
        buffer = source.addSourceBuffer(type);
      } catch (err) {
        this.retryLater(`The player refused the stream (${err.name})`);
        return;
      }
      const queue = [];
      let queued = 0;

      const feed = () => {
        if (mine !== this.session || buffer.updating || !queue.length || source.readyState !== "open") return;
        const parts = queue.splice(0);
        queued = 0;
        let chunk = parts[0];
        if (parts.length > 1) {
          chunk = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
          let at = 0;
          for (const p of parts) { chunk.set(p, at); at += p.length; }
        }
        try {
          buffer.appendBuffer(chunk);
        } catch (err) {
          this.retryLater(`The player refused the stream (${err.name})`);
        }
      };
      buffer.addEventListener("updateend", () => {
        if (mine !== this.session) return;
        this.followLiveEdge();
        this.trim(buffer);
        feed();
      });

      const reader = resp.body.getReader();
      this.liveSince = performance.now();
      this.set("live", "Live");
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (mine !== this.session) return;
          if (done) break;
          this.state.bytes += value.length;
          this.state.chunks += 1;
          queue.push(value);
          queued += value.length;
          if (queued > MAX_QUEUED) {
            this.retryLater("The player fell behind");
            return;
          }
          feed();
        }
      } catch (err) {
        if (mine !== this.session) return;  // stopped on purpose
      }
      if (mine === this.session) this.retryLater("The live stream ended");
    }

    /** Play close behind the newest frame: jump when far behind, else speed up gently. */
    followLiveEdge() {
      const video = this.video;
      const ranges = video.buffered;
      if (!ranges.length) return;
      const end = ranges.end(ranges.length - 1);
      const start = ranges.start(ranges.length - 1);
      let lag = end - video.currentTime;
      // The first data holds the current GOP so far (it starts at a keyframe): show its
      // newest frames rather than replaying it.
      if (video.currentTime < start || lag > MAX_LAG || (this.fresh && lag > TARGET_LAG)) {
        video.currentTime = Math.max(start, end - TARGET_LAG);
        this.state.jumps += 1;
        lag = end - video.currentTime;
      }
      this.fresh = false;
      if (lag > CATCH_UP) video.playbackRate = 1.1;
      else if (lag <= TARGET_LAG) video.playbackRate = 1.0;
      this.state.lag = lag;
      // Start (and restart after a stall) only with TARGET_LAG of video in hand, so the
      // usual jitter of frame arrival does not freeze the picture at every late frame.
      if (video.paused && lag >= TARGET_LAG - 0.02) video.play().catch(() => {});
      this.onProgress(this);
    }

    /** Drop what lies well behind the playhead, so the SourceBuffer never fills up. */
    trim(buffer) {
      const ranges = this.video.buffered;
      if (!ranges.length || buffer.updating) return;
      const cut = this.video.currentTime - KEEP_SECONDS;
      if (ranges.start(0) < cut - 5) buffer.remove(0, cut);
    }
  }

  // --- the page ----------------------------------------------------------------------------

  const grid = $("grid");
  const view = {
    mode: "grid",        // or "single" (?camera=<id>)
    camera: null,        // the single view's camera
    layout: savedLayout(),
    page: 0,
    cameras: null,       // from the API; null until the first answer
    error: "",           // why the camera list could not be loaded
    stopped: false,      // the Stop button
    hidden: document.hidden,
  };
  const tiles = new Map();  // camera id -> tile on the current page (built once, updated)
  const focused = new LivePlayer($("video"), { onChange: showSingle, onProgress: showStats });

  function savedLayout() {
    const n = Number(localStorage.getItem("vigil.liveLayout"));
    return LAYOUTS.includes(n) ? n : DEFAULT_LAYOUT;
  }

  function pageCount() {
    return Math.max(1, Math.ceil((view.cameras || []).length / view.layout));
  }

  function cameraById(id) {
    return (view.cameras || []).find((c) => c.id === id) || null;
  }

  function badgeKind(rec) {
    if (rec.stale) return "bad";  // no news from the recorder
    if (rec.state === "recording") return "good";
    if (rec.state === "disabled") return "off";
    if (["starting", "connecting", "waiting_keyframe", "waiting"].includes(rec.state)) return "busy";
    return "bad";
  }

  /** The camera's recording state (from the recorder, through the camera list). */
  function setBadge(badge, cam) {
    const rec = cam && cam.recording;
    badge.hidden = !rec;
    if (!rec) return;
    badge.textContent = rec.stale ? "No news" : (STATE_WORDS[rec.state] || rec.state);
    badge.className = `badge ${badgeKind(rec)}`;
    badge.title = rec.stale ? "the recorder has not reported lately"
      : (rec.last_error || rec.detail || "");
  }

  function buildTile(cam) {
    const li = vigil.el("li", "", { class: "tile", "data-camera": cam.id, "data-phase": "idle" });
    const video = vigil.el("video");
    const head = vigil.el("div", "", { class: "tile-head" });
    const link = vigil.el("a", "", { class: "tile-label", href: `?camera=${encodeURIComponent(cam.id)}` });
    const badge = vigil.el("span", "", { class: "badge" });
    const msg = vigil.el("p", "", { class: "tile-msg" });
    head.append(link, badge);
    li.append(video, head, msg);
    const tile = { li, video, link, badge, msg, cam, player: null };
    tile.player = new LivePlayer(video, { onChange: () => showTile(tile) });
    li.addEventListener("click", (event) => {
      // Ctrl/Cmd/Shift-click on the name: the browser opens it in a new tab or window.
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      openCamera(tile.cam.id);
    });
    return tile;
  }

  function updateTile(tile, cam) {
    tile.cam = cam;
    tile.link.textContent = cam.label || cam.id;
    tile.link.title = `Watch ${cam.id} large`;
    setBadge(tile.badge, cam);
  }

  function showTile(tile) {
    const { phase, status } = tile.player.state;
    tile.li.dataset.phase = phase;
    tile.msg.textContent = phase === "live" ? "" : status;
    tile.msg.hidden = phase === "live";
    if (view.mode === "grid") showGridStatus();
  }

  function showSingle(player) {
    if (view.mode !== "single") return;
    const { phase, status } = player.state;
    const message = $("single-message");
    message.textContent = phase === "live" ? "" : status;
    message.hidden = phase === "live";
    vigil.status(status, ["failed", "retrying", "busy"].includes(phase));
    if (phase !== "live") $("stats").textContent = "";
  }

  function showStats(player) {
    const { lag, bytes } = player.state;
    const video = player.video;
    $("stats").textContent = `${video.videoWidth}×${video.videoHeight}, ` +
      `${(lag * 1000).toFixed(0)} ms behind the newest frame, ${(bytes / 1e6).toFixed(1)} MB`;
  }

  function showGridStatus() {
    if (view.error) { vigil.status(view.error, true); return; }
    const cams = view.cameras;
    if (!cams) { vigil.status("Loading the cameras…"); return; }
    if (!cams.length) { vigil.status(""); return; }
    const first = view.page * view.layout;
    const last = Math.min(cams.length, first + view.layout);
    const live = [...tiles.values()].filter((t) => t.player.state.phase === "live").length;
    const range = first + 1 === last ? `Camera ${last}` : `Cameras ${first + 1}–${last}`;
    vigil.status(`${range} of ${cams.length}; ${live} live`);
  }

  /** Why a tile that could play does not, or null when it should play now. */
  function pausedReason() {
    if (view.stopped) return ["Stopped", "stopped"];
    if (view.hidden) return ["Paused while the page is hidden", "paused"];
    return null;
  }

  function renderGrid() {
    focused.stop();
    const cams = view.cameras || [];
    view.page = Math.min(view.page, pageCount() - 1);
    const shown = cams.slice(view.page * view.layout, (view.page + 1) * view.layout);
    const ids = new Set(shown.map((c) => c.id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id)) {
        tile.player.stop();
        tile.li.remove();
        tiles.delete(id);
      }
    }
    const paused = pausedReason();
    let slots = MAX_STREAMS;
    shown.forEach((cam, i) => {
      let tile = tiles.get(cam.id);
      if (!tile) {
        tile = buildTile(cam);
        tiles.set(cam.id, tile);
      }
      if (grid.children[i] !== tile.li) grid.insertBefore(tile.li, grid.children[i] || null);
      updateTile(tile, cam);
      if (!cam.enabled) {
        tile.player.stop("Disabled: not recorded. Click to try it live.", "off");
      } else if (paused) {
        tile.player.stop(...paused);
      } else if (slots > 0) {
        slots -= 1;
        tile.player.play(cam.id);
      } else {
        tile.player.stop(`Not playing: this page plays ${MAX_STREAMS} cameras at once. ` +
                         "Click to watch it large.", "standby");
      }
    });
    grid.dataset.layout = String(view.layout);
    for (const button of $("layouts").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.layout) === view.layout));
    }
    const pages = pageCount();
    $("pager").hidden = pages <= 1;
    $("pageno").textContent = `${view.page + 1} / ${pages}`;
    $("empty").hidden = !(view.cameras && !view.cameras.length);
    showGridStatus();
  }

  function renderSingle() {
    for (const tile of tiles.values()) tile.player.stop();
    const cam = cameraById(view.camera);
    $("single-label").textContent = cam ? (cam.label || cam.id) : view.camera;
    setBadge($("single-badge"), cam);
    const paused = pausedReason();
    if (paused) focused.stop(...paused);
    else focused.play(view.camera);
    showSingle(focused);
  }

  function render() {
    const single = view.mode === "single";
    grid.hidden = single;
    $("layouts").hidden = single;
    $("back").hidden = !single;
    $("single").hidden = !single;
    if (single) {
      $("pager").hidden = true;
      $("empty").hidden = true;
      renderSingle();
    } else {
      renderGrid();
    }
    $("stop").textContent = view.stopped ? "Resume" : "Stop";
  }

  function readUrl() {
    const camera = new URLSearchParams(location.search).get("camera");
    if (camera && CAMERA_ID.test(camera)) {
      view.mode = "single";
      view.camera = camera;
    } else {
      view.mode = "grid";
      view.camera = null;
    }
  }

  function openCamera(id) {
    history.pushState({ fromGrid: true }, "", `${location.pathname}?camera=${encodeURIComponent(id)}`);
    localStorage.setItem("vigil.camera", id);  // as vigil.rememberCamera, keeping the state
    readUrl();
    render();
  }

  function backToGrid() {
    if (history.state && history.state.fromGrid) {
      history.back();  // popstate renders the grid
      return;
    }
    history.pushState(null, "", location.pathname);
    readUrl();
    render();
  }

  async function loadCameras() {
    try {
      const body = await vigil.getJSON("/api/v1/cameras");
      view.cameras = Array.isArray(body.cameras) ? body.cameras : [];
      view.error = "";
    } catch (err) {
      view.error = `The camera list cannot be loaded: ${vigil.explain(err)}`;
    }
    render();
  }

  async function refreshLoop() {
    if (!document.hidden) await loadCameras();
    setTimeout(refreshLoop, REFRESH_MS);
  }

  $("layouts").addEventListener("click", (event) => {
    const layout = Number(event.target.closest("button")?.dataset.layout);
    if (!LAYOUTS.includes(layout)) return;
    const firstShown = view.page * view.layout;  // keep the first camera on screen
    view.layout = layout;
    view.page = Math.floor(firstShown / layout);
    localStorage.setItem("vigil.liveLayout", String(layout));
    render();
  });
  $("prev").addEventListener("click", () => {
    view.page = (view.page - 1 + pageCount()) % pageCount();
    render();
  });
  $("next").addEventListener("click", () => {
    view.page = (view.page + 1) % pageCount();
    render();
  });
  $("back").addEventListener("click", backToGrid);
  $("stop").addEventListener("click", () => {
    view.stopped = !view.stopped;
    if (!view.stopped && view.mode === "single") focused.play(view.camera, true);
    render();
  });
  window.addEventListener("popstate", () => { readUrl(); render(); });
  // A hidden tab still holds server threads and camera connections: let them go.
  document.addEventListener("visibilitychange", () => {
    view.hidden = document.hidden;
    render();
  });
  window.addEventListener("pagehide", () => {
    focused.halt();
    for (const tile of tiles.values()) tile.player.halt();
  });

  // For the browser tests: the focused player (single view), else the grid's first tile.
  Object.defineProperty(window, "vigilLive", {
    configurable: true,
    get() {
      if (view.mode === "single") return focused.state;
      const first = [...tiles.values()][0];
      return first ? first.player.state : focused.state;
    },
  });
  window.vigilLiveGrid = () => ({
    mode: view.mode, camera: view.camera, layout: view.layout, page: view.page,
    pages: pageCount(), loaded: view.cameras !== null, error: view.error,
    maxStreams: MAX_STREAMS,
    tiles: [...grid.querySelectorAll(".tile")].map((li) => {
      const tile = tiles.get(li.dataset.camera);
      const { phase, status, error, busy, reconnects, retryAt } = tile.player.state;
      return {
        camera: li.dataset.camera, label: tile.link.textContent, badge: tile.badge.textContent,
        phase, status, error, busy, reconnects, retryAt,
        currentTime: tile.video.currentTime, videoWidth: tile.video.videoWidth,
      };
    }),
  });

  readUrl();
  render();
  refreshLoop();
})();
