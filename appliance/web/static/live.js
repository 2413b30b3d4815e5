// Live page: the camera's fragmented MP4 stream (GET /api/v1/cameras/<cam>/live.mp4, one
// init segment then a fragment per frame) read with fetch and fed to Media Source
// Extensions. Playback follows the live edge; the stream reconnects with backoff.
"use strict";

(() => {
  const { $ } = vigil;
  const video = $("video");
  const TARGET_LAG = 0.15;     // seconds behind the newest frame we aim to play
  const CATCH_UP = 0.3;        // beyond this: play 10 % faster until back at the target
  const MAX_LAG = 1.0;         // beyond this (or at the start): jump to the live edge
  const KEEP_SECONDS = 20;     // buffered video kept behind the playhead
  const MAX_QUEUED = 8 << 20;  // bytes waiting for the SourceBuffer before we restart
  const RETRY_MS = [1000, 2000, 4000, 8000, 10000];

  // What the page is doing, for people (status line) and for the browser tests.
  const state = window.vigilLive = {
    camera: null, status: "idle", codec: null, bytes: 0, chunks: 0, lag: null,
    reconnects: 0, error: null, jumps: 0, stalls: 0,
    frames: [],  // [media time s, wall-clock ms when shown] of the last frames on screen
  };
  let session = 0;       // bumps on every (re)start; stale loops notice and stop
  let fresh = true;      // no frame shown yet since (re)connecting: start at the live edge
  let controller = null;
  let retryTimer = null;

  function show(text, isError = false) {
    state.status = text;
    vigil.status(text, isError);
  }

  function stop() {
    session += 1;
    clearTimeout(retryTimer);
    if (controller) controller.abort();
    controller = null;
    video.removeAttribute("src");
    video.load();
  }

  function retryLater(why) {
    const delay = RETRY_MS[Math.min(state.reconnects, RETRY_MS.length - 1)];
    state.reconnects += 1;
    show(`${why}; reconnecting in ${delay / 1000} s`, true);
    const mine = session;
    retryTimer = setTimeout(() => { if (mine === session) start(state.camera, true); }, delay);
  }

  async function start(camera, isRetry = false) {
    stop();
    const mine = session;
    if (!isRetry) state.reconnects = 0;
    Object.assign(state, { camera, error: null });
    vigil.rememberCamera(camera);
    show("Connecting…");
    controller = new AbortController();
    let resp;
    try {
      resp = await fetch(`/api/v1/cameras/${encodeURIComponent(camera)}/live.mp4`,
                         { credentials: "same-origin", cache: "no-store", signal: controller.signal });
    } catch (err) {
      if (mine === session) retryLater("The box did not answer");
      return;
    }
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      const err = Object.assign(new Error(body.error || resp.statusText), { status: resp.status });
      state.error = vigil.explain(err);
      if (resp.status === 503 || resp.status === 429) retryLater(state.error);
      else show(state.error, true);  // 401/403/404: retrying will not help
      return;
    }
    const type = resp.headers.get("Content-Type") || "";
    state.codec = type;
    if (!window.MediaSource || !MediaSource.isTypeSupported(type)) {
      controller.abort();
      state.error = `This browser cannot play ${type} (H.265 needs a browser with HEVC support).`;
      show(state.error, true);
      return;
    }
    await pump(resp, type, mine);
  }

  async function pump(resp, type, mine) {
    fresh = true;
    const source = new MediaSource();
    video.src = URL.createObjectURL(source);
    await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
    URL.revokeObjectURL(video.src);
    const buffer = source.addSourceBuffer(type);
    const queue = [];
    let queued = 0;

    const feed = () => {
      if (mine !== session || buffer.updating || !queue.length || source.readyState !== "open") return;
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
        retryLater(`The player refused the stream (${err.name})`);
      }
    };
    buffer.addEventListener("updateend", () => {
      followLiveEdge();
      trim(buffer);
      feed();
    });

    const reader = resp.body.getReader();
    show("Live");
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (mine !== session) return;
        if (done) break;
        state.bytes += value.length;
        state.chunks += 1;
        queue.push(value);
        queued += value.length;
        if (queued > MAX_QUEUED) {
          retryLater("The player fell behind");
          return;
        }
        feed();
      }
    } catch (err) {
      if (mine !== session) return;  // stopped on purpose
    }
    if (mine === session) retryLater("The live stream ended");
  }

  /** Play close behind the newest frame: jump when far behind, else speed up gently. */
  function followLiveEdge() {
    const ranges = video.buffered;
    if (!ranges.length) return;
    const end = ranges.end(ranges.length - 1);
    const start = ranges.start(ranges.length - 1);
    let lag = end - video.currentTime;
    // The first data holds the current GOP so far (it starts at a keyframe): show its
    // newest frames rather than replaying it.
    if (video.currentTime < start || lag > MAX_LAG || (fresh && lag > TARGET_LAG)) {
      video.currentTime = Math.max(start, end - TARGET_LAG);
      state.jumps += 1;
      lag = end - video.currentTime;
    }
    fresh = false;
    if (lag > CATCH_UP) video.playbackRate = 1.1;
    else if (lag <= TARGET_LAG) video.playbackRate = 1.0;
    state.lag = lag;
    // Start (and restart after a stall) only with TARGET_LAG of video in hand, so the
    // usual jitter of frame arrival does not freeze the picture at every late frame.
    if (video.paused && lag >= TARGET_LAG - 0.02) video.play().catch(() => {});
    $("stats").textContent = `${video.videoWidth}×${video.videoHeight}, ` +
      `${(lag * 1000).toFixed(0)} ms behind the newest frame, ${(state.bytes / 1e6).toFixed(1)} MB`;
  }

  /** Drop what lies well behind the playhead, so the SourceBuffer never fills up. */
  function trim(buffer) {
    const ranges = video.buffered;
    if (!ranges.length || buffer.updating) return;
    const cut = video.currentTime - KEEP_SECONDS;
    if (ranges.start(0) < cut - 5) buffer.remove(0, cut);
  }

  video.addEventListener("waiting", () => {
    if (state.status !== "Live" || video.seeking) return;
    state.stalls += 1;
    video.pause();  // ran out of video: wait for TARGET_LAG of it (followLiveEdge)
  });

  // When each frame reaches the screen, on the wall clock (for measuring latency).
  function onFrame(_now, meta) {
    state.frames.push([meta.mediaTime, performance.timeOrigin + meta.presentationTime]);
    if (state.frames.length > 250) state.frames.shift();
    video.requestVideoFrameCallback(onFrame);
  }
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(onFrame);
  }

  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    start($("camera").value.trim());
  });
  $("stop").addEventListener("click", () => { stop(); show("Stopped"); });
  // A hidden tab still holds a server thread and a camera connection: let them go.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { stop(); show("Paused while the page is hidden"); }
    else if (state.camera) start(state.camera);
  });
  window.addEventListener("pagehide", stop);

  $("camera").value = vigil.initialCamera();
  start($("camera").value);
})();
