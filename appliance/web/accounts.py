"""Users, roles, server-side sessions, login throttling and the audit log (SQLite).

There is no default account: until the first-boot setup creates the admin, only the
setup endpoints answer. Passwords are hashed with scrypt (a slow, memory-hard KDF from
the standard library); sessions live in this database, not in the cookie, so logout and
a password change really end them (the cookie carries a random token whose SHA-256 is
stored, never the token itself). The web process is the only writer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.core.errors import FailedPrecondition, InvalidConfig, ResourceExhausted

ROLES = ("admin", "operator", "viewer")
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}\Z")  # \Z: no trailing newline
MIN_PASSWORD = 10
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
SESSION_SECONDS = 12 * 3600
IDLE_SECONDS = 3600
FAILURES_BEFORE_LOCK = 5
LOCK_SECONDS = (30, 60, 300, 900)  # backoff per lock in a row

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL,
    cameras TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL, epoch INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL,
    created REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lockouts (
    key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locks INTEGER NOT NULL,
    until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', address TEXT NOT NULL DEFAULT '');
"""
WIZARD_TABLE = ("CREATE TABLE IF NOT EXISTS wizard (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "step TEXT NOT NULL DEFAULT '', finished REAL)")


@dataclass(frozen=True)
class User:
    username: str
    role: str
    cameras: tuple[str, ...]  # viewers: the cameras they may watch ("*": all)

    def can_view(self, camera: str) -> bool:
        return self.role != "viewer" or "*" in self.cameras or camera in self.cameras


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    token_hash: str


class LoginFailed(InvalidConfig):
    """Wrong user name or password (answered 401)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024,
                            **SCRYPT)
    params = ",".join(f"{k}={v}" for k, v in SCRYPT.items())
    return f"$scrypt${params}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, kind, params, salt, digest = stored.split("$")
        values = dict(item.split("=") for item in params.split(","))
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32,
                                maxmem=64 * 1024 * 1024,
                                **{k: int(v) for k, v in values.items()})
    except (ValueError, TypeError):
        return False
    return kind == "scrypt" and hmac.compare_digest(actual.hex(), digest)


def check_new_password(username: str, password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidConfig(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise InvalidConfig("the password is longer than 256 characters")
    if username.lower() in password.lower():
        raise InvalidConfig("the password must not contain the user name")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # accounts are config: commits durable
        self._db.executescript(SCHEMA)
        self.path.chmod(0o600)

    def close(self) -> None:
        self._db.close()

    # --- setup and users ------------------------------------------------------------------
    def setup_needed(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0

    def create_first_admin(self, username: str, password: str) -> User:
        """Exactly once: concurrent submissions create one admin, the others are refused."""
        self._check_username(username)
        check_new_password(username, password)
        hashed = hash_password(password)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
                    raise FailedPrecondition("the box is already set up")
                self._db.execute("INSERT INTO users (username, hash, role, created) "
                                 "VALUES (?, ?, 'admin', ?)", (username, hashed, time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return User(username, "admin", ())

    def add_user(self, username: str, password: str, role: str,
                 cameras: tuple[str, ...] = ()) -> User:
        self._check_username(username)
        check_new_password(username, password)
        if role not in ROLES:
            raise InvalidConfig(f"role must be one of {', '.join(ROLES)}")
        try:
            with self._lock:
                self._db.execute("INSERT INTO users (username, hash, role, cameras, created) "
                                 "VALUES (?, ?, ?, ?, ?)", (username, hash_password(password),
                                                           role, json.dumps(list(cameras)),
                                                           time.time()))
        except sqlite3.IntegrityError:
            raise FailedPrecondition(f"a user {username} already exists") from None
        return User(username, role, tuple(cameras))

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute("SELECT username, role, cameras FROM users ORDER BY username")
            return [User(u, r, tuple(json.loads(c))) for u, r, c in rows.fetchall()]

    def change_password(self, username: str, old: str, new: str) -> None:
        """Also ends every session of the user (the caller logs in again)."""
        check_new_password(username, new)
        with self._lock:
            row = self._db.execute("SELECT hash FROM users WHERE username = ?",
                                   (username,)).fetchone()
        if row is None or not check_password(old, row[0]):
            raise InvalidConfig("the current password is wrong")
        with self._lock:
            self._db.execute("UPDATE users SET hash = ? WHERE username = ?",
                             (hash_password(new), username))
            self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def get_user(self, username: str) -> User | None:
        with self._lock:
            row = self._db.execute("SELECT username, role, cameras FROM users WHERE username = ?",
                                   (username,)).fetchone()
        return User(row[0], row[1], tuple(json.loads(row[2]))) if row else None

    def update_user(self, username: str, role: str | None = None,
                    cameras: tuple[str, ...] | None = None) -> tuple[User, User]:
        """Change a user's role and/or camera grants; (before, after). The last admin
        cannot be made anything else (checked in the same transaction as the change)."""
        if role is not None and role not in ROLES:
            raise InvalidConfig(f"role must be one of {', '.join(ROLES)}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT role, cameras FROM users WHERE username = ?",
                                       (username,)).fetchone()
                if row is None:
                    raise FailedPrecondition(f"there is no user {username}")
                before = User(username, row[0], tuple(json.loads(row[1])))
                after = User(username, role or before.role,
                             before.cameras if cameras is None else tuple(cameras))
                if before.role == "admin" and after.role != "admin" and self._admins() <= 1:
                    raise FailedPrecondition(f"{username} is the last admin: make another "
                                             "user admin first")
                self._db.execute("UPDATE users SET role = ?, cameras = ? WHERE username = ?",
                                 (after.role, json.dumps(list(after.cameras)), username))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return before, after

    def delete_user(self, username: str) -> User:
        """Remove a user and end every session of theirs; never the last admin."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT role, cameras FROM users WHERE username = ?",
                                       (username,)).fetchone()
                if row is None:
                    raise FailedPrecondition(f"there is no user {username}")
                if row[0] == "admin" and self._admins() <= 1:
                    raise FailedPrecondition(f"{username} is the last admin and cannot be "
                                             "deleted")
                self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))
                self._db.execute("DELETE FROM users WHERE username = ?", (username,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return User(username, row[0], tuple(json.loads(row[1])))

    def reset_password(self, username: str, new: str) -> None:
        """An admin sets another user's password (no old password); ends their sessions."""
        check_new_password(username, new)
        hashed = hash_password(new)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                changed = self._db.execute("UPDATE users SET hash = ? WHERE username = ?",
                                           (hashed, username)).rowcount
                if not changed:
                    raise FailedPrecondition(f"there is no user {username}")
                self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def sessions_of(self, username: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM sessions WHERE username = ?",
                                    (username,)).fetchone()[0]

    def _admins(self) -> int:
        """Call with the lock held (inside the caller's transaction)."""
        return self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]

    # --- alert acknowledgements (the web's own record: who saw which alert) --------------------
    def acknowledge_alert(self, alert_id: str, who: str) -> bool:
        """Remember that `who` acknowledged the alert; False if it already was."""
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS alert_acks (alert_id TEXT PRIMARY KEY, "
                             "who TEXT NOT NULL, time REAL NOT NULL)")
            return self._db.execute("INSERT OR IGNORE INTO alert_acks (alert_id, who, time) "
                                    "VALUES (?, ?, ?)", (alert_id, who, time.time())).rowcount > 0

    def alert_acknowledgements(self) -> dict[str, dict]:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS alert_acks (alert_id TEXT PRIMARY KEY, "
                             "who TEXT NOT NULL, time REAL NOT NULL)")
            rows = self._db.execute("SELECT alert_id, who, time FROM alert_acks").fetchall()
        return {a: {"by": w, "time": t} for a, w, t in rows}

    # --- the first-boot wizard's progress (finished once, never re-entered) -------------------
    def wizard_state(self) -> dict:
        """{"step": the last step the owner completed, "finished": time or None}."""
        with self._lock:
            self._db.execute(WIZARD_TABLE)
            row = self._db.execute("SELECT step, finished FROM wizard WHERE id = 1").fetchone()
        return {"step": row[0] if row else "", "finished": row[1] if row else None}

    def wizard_step_done(self, step: str) -> None:
        with self._lock:
            self._db.execute(WIZARD_TABLE)
            self._db.execute("INSERT INTO wizard (id, step) VALUES (1, ?) ON CONFLICT (id) "
                             "DO UPDATE SET step = excluded.step WHERE finished IS NULL", (step,))

    def finish_wizard(self) -> None:
        """Exactly once (concurrent finishes: one wins, the others are refused)."""
        with self._lock:
            self._db.execute(WIZARD_TABLE)
            done = self._db.execute(
                "INSERT INTO wizard (id, step, finished) VALUES (1, 'summary', ?) "
                "ON CONFLICT (id) DO UPDATE SET step = 'summary', finished = excluded.finished "
                "WHERE finished IS NULL", (time.time(),)).rowcount
        if not done:
            raise FailedPrecondition("the first-boot setup is already finished")

    @staticmethod
    def _check_username(username: str) -> None:
        if not isinstance(username, str) or not USERNAME.match(username):
            raise InvalidConfig("user names are 2-32 lower-case letters, digits, '.', '_' or "
                                "'-', starting with a letter")

    # --- login, sessions, throttling --------------------------------------------------------
    def login(self, username: str, password: str, address: str) -> tuple[str, Session]:
        """A new session (token for the cookie, session) or InvalidConfig; throttled per
        user name and per client address, with a growing lockout."""
        now = time.time()
        for key in (f"user:{username}", f"addr:{address}"):
            wait = self._locked_for(key, now)
            if wait:
                self.audit(username, "login_locked", f"{wait:.0f} s left", address)
                raise ResourceExhausted(f"too many failed logins; try again in {wait:.0f} s")
        with self._lock:
            row = self._db.execute("SELECT hash, role, cameras FROM users WHERE username = ?",
                                   (username if isinstance(username, str) else "",)).fetchone()
        stored = row[0] if row else hash_password(secrets.token_hex(8))  # same cost either way
        if not (isinstance(password, str) and check_password(password, stored)) or row is None:
            for key in (f"user:{username}", f"addr:{address}"):
                self._failed(key, now)
            self.audit(str(username)[:64], "login_failed", "", address)
            raise LoginFailed("wrong user name or password")
        for key in (f"user:{username}", f"addr:{address}"):
            self._clear(key)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute("INSERT INTO sessions (token_hash, username, csrf, created, "
                             "last_seen) VALUES (?, ?, ?, ?, ?)",
                             (_token_hash(token), username, csrf, now, now))
        self.audit(username, "login", "", address)
        user = User(username, row[1], tuple(json.loads(row[2])))
        return token, Session(user, csrf, _token_hash(token))

    def session(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        now = time.time()
        with self._lock:
            row = self._db.execute(
                "SELECT s.username, s.csrf, s.created, s.last_seen, u.role, u.cameras "
                "FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.token_hash = ?", (_token_hash(token),)).fetchone()
            if row is None:
                return None
            if now - row[2] > SESSION_SECONDS or now - row[3] > IDLE_SECONDS:
                self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))
                return None
            if now - row[3] > 60:
                self._db.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                                 (now, _token_hash(token)))
        return Session(User(row[0], row[4], tuple(json.loads(row[5]))), row[1], _token_hash(token))

    def logout(self, session: Session) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))

    def _locked_for(self, key: str, now: float) -> float:
        with self._lock:
            row = self._db.execute("SELECT until FROM lockouts WHERE key = ?", (key,)).fetchone()
        return max(0.0, row[0] - now) if row else 0.0

    def _failed(self, key: str, now: float) -> None:
        with self._lock:
            row = self._db.execute("SELECT failures, locks FROM lockouts WHERE key = ?",
                                   (key,)).fetchone()
            failures, locks = (row[0] + 1, row[1]) if row else (1, 0)
            until = 0.0
            if failures >= FAILURES_BEFORE_LOCK:
                until = now + LOCK_SECONDS[min(locks, len(LOCK_SECONDS) - 1)]
                failures, locks = 0, locks + 1
            self._db.execute("INSERT INTO lockouts (key, failures, locks, until) VALUES "
                             "(?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET failures = "
                             "excluded.failures, locks = excluded.locks, until = excluded.until",
                             (key, failures, locks, until))

    def _clear(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM lockouts WHERE key = ?", (key,))

    # --- audit ------------------------------------------------------------------------------
    def audit(self, who: str, what: str, detail: str = "", address: str = "") -> None:
        with self._lock:
            self._db.execute("INSERT INTO audit (time, who, what, detail, address) VALUES "
                             "(?, ?, ?, ?, ?)", (time.time(), who, what, detail[:500], address))

    def audit_log(self, limit: int = 200) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT time, who, what, detail, address FROM audit "
                                    "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(("time", "who", "what", "detail", "address"), r)) for r in rows]

    # --- configuration backup, restore and factory reset (appliance/web/system_api.py) ------
    def confirm_password(self, username: str, password: str, address: str) -> None:
        """The signed-in user's password again, before a dangerous action; throttled and
        locked out exactly like a login (a stolen session cannot guess it)."""
        now = time.time()
        for key in (f"user:{username}", f"addr:{address}"):
            wait = self._locked_for(key, now)
            if wait:
                raise ResourceExhausted(f"too many wrong passwords; try again in {wait:.0f} s")
        with self._lock:
            row = self._db.execute("SELECT hash FROM users WHERE username = ?",
                                   (username,)).fetchone()
        if row is None or not isinstance(password, str) or not check_password(password, row[0]):
            for key in (f"user:{username}", f"addr:{address}"):
                self._failed(key, now)
            self.audit(username, "password_confirm_failed", "", address)
            raise InvalidConfig("the password is wrong")

    def export_users(self) -> list[dict]:
        """Every account with its password hash (for a configuration backup)."""
        with self._lock:
            rows = self._db.execute("SELECT username, role, cameras, hash FROM users "
                                    "ORDER BY username").fetchall()
        return [{"username": u, "role": r, "cameras": json.loads(c), "hash": h}
                for u, r, c, h in rows]

    def check_import(self, users: list) -> list[dict]:
        """The accounts of a backup, checked as this store checks new ones; at least one
        admin. Raises InvalidConfig with the reason; changes nothing."""
        if not isinstance(users, list) or not users:
            raise InvalidConfig("the backup holds no accounts")
        checked, names = [], set()
        for user in users:
            if not isinstance(user, dict):
                raise InvalidConfig("the backup's accounts are damaged")
            name, role, cams, digest = (user.get("username"), user.get("role"),
                                        user.get("cameras", []), user.get("hash"))
            self._check_username(name)
            if name in names or role not in ROLES:
                raise InvalidConfig(f"the backup's account {name} is listed twice or has an "
                                    "unknown role")
            if not isinstance(cams, list) or not all(isinstance(c, str) for c in cams):
                raise InvalidConfig(f"the backup's account {name} has a damaged camera list")
            parts = digest.split("$") if isinstance(digest, str) else []
            if len(parts) != 5 or parts[1] != "scrypt":
                raise InvalidConfig(f"the backup's password of {name} is damaged")
            names.add(name)
            checked.append({"username": name, "role": role, "cameras": list(cams),
                            "hash": digest})
        if not any(u["role"] == "admin" for u in checked):
            raise InvalidConfig("the backup has no admin account")
        return checked

    def replace_users(self, users: list) -> int:
        """All accounts become the backup's (one transaction); every session ends."""
        checked = self.check_import(users)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM sessions")
                self._db.execute("DELETE FROM lockouts")
                self._db.execute("DELETE FROM users")
                for u in checked:
                    self._db.execute("INSERT INTO users (username, hash, role, cameras, created)"
                                     " VALUES (?, ?, ?, ?, ?)", (u["username"], u["hash"],
                                                                u["role"], json.dumps(u["cameras"]),
                                                                time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(checked)

    def factory_reset(self) -> None:
        """Every table emptied (users, sessions, lockouts, the audit log and whatever else
        this store keeps), with the deleted content overwritten in the file: the box is
        back at first-boot setup."""
        with self._lock:
            tables = [r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                "name NOT LIKE 'sqlite_%'").fetchall()]
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in tables:
                    self._db.execute(f'DELETE FROM "{table}"')
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
