// The users page (admin): list, add, change role and camera grants, reset a password,
// delete with a confirmation step. Every change is checked and audited by the API.
"use strict";

const state = window.vigilUsers = { loaded: false, users: [], me: "", error: "" };
const ROLES = ["admin", "operator", "viewer"];

function cameraList(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function report(err) {
  state.error = vigil.explain(err);
  vigil.status(state.error, true);
}

function userCard(user) {
  const card = vigil.el("form", "", { class: "card user", "data-user": user.username });
  card.append(vigil.el("h2", user.username + (user.username === state.me ? " (you)" : "")));
  const role = vigil.el("select", "", { class: "role", "aria-label": `role of ${user.username}` });
  for (const name of ROLES) {
    const option = vigil.el("option", name, { value: name });
    option.selected = name === user.role;
    role.append(option);
  }
  const roleLabel = vigil.el("label", "Role ");
  roleLabel.append(role);
  const cameras = vigil.el("input", "", { class: "cameras", autocomplete: "off",
                                          "aria-label": `cameras of ${user.username}` });
  cameras.value = user.cameras.join(", ");
  const camLabel = vigil.el("label", "Cameras (viewers; comma-separated, * for all) ");
  camLabel.append(cameras);
  card.append(roleLabel, camLabel);

  const actions = vigil.el("div", "", { class: "actions" });
  const save = vigil.el("button", "Save", { type: "submit", class: "save" });
  const reset = vigil.el("button", "Reset password", { type: "button", class: "reset" });
  const del = vigil.el("button", "Delete", { type: "button", class: "delete danger" });
  actions.append(save, reset, del);
  card.append(actions);

  const resetBox = vigil.el("div", "", { class: "reset-box", hidden: "" });
  const newPassword = vigil.el("input", "", { type: "password", class: "new-password",
                                              autocomplete: "new-password", minlength: "10" });
  const resetLabel = vigil.el("label", `New password for ${user.username} `);
  resetLabel.append(newPassword);
  const resetGo = vigil.el("button", "Set password", { type: "button", class: "reset-go" });
  resetBox.append(resetLabel, resetGo);
  card.append(resetBox);

  const confirmBox = vigil.el("div", "", { class: "confirm-box actions", hidden: "" });
  const yes = vigil.el("button", `Yes, delete ${user.username}`, { type: "button",
                                                                   class: "confirm danger" });
  const no = vigil.el("button", "Keep", { type: "button", class: "keep" });
  confirmBox.append(vigil.el("span", `Delete ${user.username}? Their sessions end at once.`),
                    yes, no);
  card.append(confirmBox);

  const path = `/api/v1/users/${encodeURIComponent(user.username)}`;
  card.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await vigil.send("PATCH", path, { role: role.value, cameras: cameraList(cameras.value) });
      vigil.status(`${user.username} saved.`);
      await load();
    } catch (err) { report(err); }
  });
  reset.addEventListener("click", () => { resetBox.hidden = !resetBox.hidden; newPassword.focus(); });
  resetGo.addEventListener("click", async () => {
    try {
      await vigil.send("POST", `${path}/password`, { password: newPassword.value });
      newPassword.value = "";
      resetBox.hidden = true;
      vigil.status(`New password set for ${user.username}; their sessions ended.`);
      if (user.username === state.me) location.assign("/login");
    } catch (err) { report(err); }
  });
  del.addEventListener("click", () => { confirmBox.hidden = false; });
  no.addEventListener("click", () => { confirmBox.hidden = true; });
  yes.addEventListener("click", async () => {
    try {
      await vigil.send("DELETE", path, {});
      vigil.status(`${user.username} deleted.`);
      if (user.username === state.me) location.assign("/login");
      else await load();
    } catch (err) { report(err); }
  });
  return card;
}

async function load() {
  try {
    const me = await vigil.getJSON("/api/v1/me");
    state.me = me.user;
    const answer = await vigil.getJSON("/api/v1/users");
    state.users = answer.users;
    vigil.$("users").replaceChildren(...answer.users.map(userCard));
    state.error = "";
  } catch (err) { report(err); }
  state.loaded = true;
}

vigil.$("add-user").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { username: vigil.$("new-username").value.trim(),
                 password: vigil.$("new-password").value, role: vigil.$("new-role").value,
                 cameras: cameraList(vigil.$("new-cameras").value) };
  try {
    await vigil.send("POST", "/api/v1/users", body);
    vigil.$("add-user").reset();
    vigil.status(`${body.username} added.`);
    await load();
  } catch (err) { report(err); }
});

load();
