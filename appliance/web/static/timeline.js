// Recordings page: one camera's day as a bar of recorded spans and gaps; a click plays
// from that instant through the HLS playlist (vendored hls.js; native HLS otherwise).
"use strict";

(() => {
  const { $ } = vigil;
  const video = $("video");
  // What the page did, for people (status line) and for the browser tests.
  const state = window.vigilTimeline = {
    loaded: false, camera: null, dayStart: 0, dayEnd: 0, spans: [], gaps: [], events: [],
    playing: null, player: null, error: null,
  };
  let hls = null;
  const DAY_US = 86400e6;

  function pad(n) { return String(n).padStart(2, "0"); }

  function localDay(date) {
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  /** [start, end) of a local calendar day, in ms since the epoch (DST-safe). */
  function dayBounds(text) {
    const [y, m, d] = text.split("-").map(Number);
    return [new Date(y, m - 1, d).getTime(), new Date(y, m - 1, d + 1).getTime()];
  }

  function percent(t) {
    return `${(100 * (t - state.dayStart)) / (state.dayEnd - state.dayStart)}%`;
  }

  function place(el, start, end) {
    el.style.left = percent(Math.max(start, state.dayStart));
    el.style.width = `calc(${percent(Math.min(end, state.dayEnd))} - ${percent(Math.max(start, state.dayStart))})`;
  }

  async function load() {
    const camera = $("camera").value.trim();
    const [start, end] = dayBounds($("day").value);
    Object.assign(state, { loaded: false, camera, dayStart: start, dayEnd: end, error: null });
    vigil.rememberCamera(camera);
    vigil.status("Loading…");
    try {
      const data = await vigil.getJSON(`/api/v1/cameras/${encodeURIComponent(camera)}/timeline` +
                                       `?from=${start * 1000}&to=${end * 1000}`);
      state.spans = data.spans.map((s) => ({ start: s.start_us / 1000, end: s.end_us / 1000 }));
      state.gaps = data.gaps.map((g) => ({ start: g.start_us / 1000,
                                           end: (g.end_us ?? Date.now() * 1000) / 1000,
                                           cause: g.cause, detail: g.detail || "" }));
      state.events = (data.events || []).map((e) => ({
        start: e.start_us / 1000, end: (e.end_us ?? Date.now() * 1000) / 1000,
        kind: e.kind, topic: e.topic || "" }));
      draw();
      const hours = state.spans.reduce((sum, s) => sum + (s.end - s.start), 0) / 3.6e6;
      vigil.status(state.spans.length
        ? `${state.spans.length} recorded span(s), ${hours.toFixed(2)} h; ${state.gaps.length} gap(s)`
        : "Nothing recorded on this day.");
      state.loaded = true;
      document.dispatchEvent(new CustomEvent("vigil:timeline"));  // export.js follows the view
    } catch (err) {
      state.error = vigil.explain(err);
      vigil.status(state.error, true);
    }
  }

  const PLANNED = new Set(["outside_schedule", "no_event", "recorder_stopped"]);

  function draw() {
    const bar = $("bar");
    bar.replaceChildren();
    for (const gap of state.gaps) {
      const el = document.createElement("div");
      // not recorded on purpose (schedule off, events-only without an event): not a failure
      el.className = PLANNED.has(gap.cause) ? "gap planned" : "gap";
      el.title = `${gap.cause}${gap.detail ? ": " + gap.detail : ""} ` +
                 `(${new Date(gap.start).toLocaleTimeString()}–${new Date(gap.end).toLocaleTimeString()})`;
      place(el, gap.start, gap.end);
      bar.append(el);
    }
    for (const span of state.spans) {
      const el = document.createElement("div");
      el.className = "span";
      el.title = `recorded ${new Date(span.start).toLocaleTimeString()}–${new Date(span.end).toLocaleTimeString()}`;
      place(el, span.start, span.end);
      bar.append(el);
    }
    for (const event of state.events) {
      const el = document.createElement("div");
      el.className = `event ${event.kind}`;
      el.title = `${event.kind} ${new Date(event.start).toLocaleTimeString()}–` +
                 `${new Date(event.end).toLocaleTimeString()}${event.topic ? " (" + event.topic + ")" : ""}`;
      place(el, event.start, Math.max(event.end, event.start + 1000));
      bar.append(el);
    }
    const hours = $("hours");
    hours.replaceChildren();
    for (let h = 0; h <= 24; h += 3) {
      const label = document.createElement("span");
      label.textContent = `${pad(h % 24)}:00`;
      label.style.left = `${(100 * h) / 24}%`;
      hours.append(label);
    }
  }

  /** The instant clicked, moved into the recording that holds it or the next one. */
  function playableFrom(t) {
    for (const span of state.spans) {
      if (t < span.end) return Math.max(t, span.start);
    }
    return null;
  }

  function play(t) {
    const from = playableFrom(t);
    if (from === null) {
      vigil.status("Nothing recorded after that time on this day.");
      return;
    }
    // Up to 24 h from there (the API's longest playlist): playback runs on past midnight.
    const url = `/api/v1/cameras/${encodeURIComponent(state.camera)}/playback.m3u8` +
                `?from=${Math.floor(from * 1000)}&to=${Math.floor(from * 1000) + DAY_US}`;
    if (hls) { hls.destroy(); hls = null; }
    state.playing = { from, url };
    if (window.Hls && Hls.isSupported()) {
      state.player = "hls.js";
      hls = new Hls({ maxBufferLength: 30, backBufferLength: 60 });
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data.fatal) vigil.status(`Playback failed: ${data.details}`, true);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      state.player = "native";
      video.src = url;
      video.play().catch(() => {});
    } else {
      vigil.status("This browser cannot play HLS.", true);
      return;
    }
    vigil.status(`Playing from ${new Date(from).toLocaleString()}`);
  }

  /** Wall-clock time of the frame on screen (from EXT-X-PROGRAM-DATE-TIME with hls.js). */
  function playingTime() {
    if (hls && hls.playingDate) return hls.playingDate.getTime();
    if (state.playing) return state.playing.from + video.currentTime * 1000;
    return null;
  }

  video.addEventListener("timeupdate", () => {
    const t = playingTime();
    if (t === null) return;
    $("clock").textContent = new Date(t).toLocaleString();
    const cursor = $("cursor");
    cursor.hidden = !(t >= state.dayStart && t < state.dayEnd);
    cursor.style.left = percent(t);
  });

  $("timeline").addEventListener("click", (event) => {
    if (!state.loaded) return;
    const rect = $("bar").getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    play(state.dayStart + frac * (state.dayEnd - state.dayStart));
  });

  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });

  const params = new URLSearchParams(location.search);
  $("camera").value = vigil.initialCamera();
  $("day").value = params.get("day") || localDay(new Date());
  load();
})();
