"""Least privilege: capture sockets are opened first, then every privilege is given up.

docs/sensor.md, "Privileges". Two ways to run, both ending with no capability at all:

- started as root with ``--user USER``: ``setgroups([])``, ``setgid``, ``setuid`` (the
  kernel clears the permitted, effective and ambient capability sets on the change from
  uid 0 because ``PR_SET_KEEPCAPS`` is off);
- started unprivileged with ``CAP_NET_RAW`` and ``CAP_NET_ADMIN`` (systemd
  ``AmbientCapabilities=``): the ambient set is cleared and ``capset`` empties the
  permitted and effective sets.

Either way ``PR_SET_NO_NEW_PRIVS`` is set, and ``verify_dropped`` reads /proc/self/status
and fails unless every capability set is empty and regaining uid 0 fails. Already open
AF_PACKET sockets keep working: the kernel checks CAP_NET_RAW when a socket is created.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class PrivilegeError(Exception):
    """Privileges could not be dropped as asked; the sensor refuses to run."""


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    caps: dict[str, int]  # /proc/self/status capability sets


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    if name is None:
        raise PrivilegeError("cannot load the C library to change privileges")
    return ctypes.CDLL(name, use_errno=True)


def current() -> Identity:
    caps: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in CAP_SETS:
            caps[key] = int(value.strip(), 16)
    return Identity(os.getuid(), os.getgid(), caps)


def resolve_user(name: str) -> tuple[int, int]:
    """(uid, gid) of ``name`` (or ``name:group``); a missing user is a usage error."""
    user, _, group = name.partition(":")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"--user {name}: no such user") from None
    gid = entry.pw_gid
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"--user {name}: no such group {group!r}") from None
    if entry.pw_uid == 0:
        raise PrivilegeError(f"--user {name}: that is root; name an unprivileged user")
    return entry.pw_uid, gid


def drop_to_user(uid: int, gid: int) -> None:
    """Root -> ``uid``:``gid`` with no supplementary groups and no capabilities."""
    if os.geteuid() != 0:
        raise PrivilegeError("--user needs the sensor to be started as root")
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to uid {uid}: {exc.strerror}") from None
    _no_new_privs()


def drop_capabilities() -> None:
    """An unprivileged process started with capabilities: clear ambient, permitted and
    effective sets (the bounding set stays as systemd set it)."""
    libc = _libc()
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: 64 capability bits in two words
    if libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"capset failed: {os.strerror(err)}")
    _no_new_privs()


def _no_new_privs() -> None:
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise PrivilegeError(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")


def verify_dropped() -> Identity:
    """Fail unless this process holds no capability and cannot become root again."""
    ident = current()
    held = {k: v for k, v in ident.caps.items() if k in ("CapPrm", "CapEff", "CapAmb") and v}
    if held:
        raise PrivilegeError(f"capabilities still held after the drop: {held}")
    if ident.uid == 0 or os.geteuid() == 0:
        raise PrivilegeError("still running as root after the drop")
    try:
        os.setuid(0)
    except PermissionError:
        return ident
    raise PrivilegeError("could regain uid 0 after the drop")


def drop(user: str | None) -> Identity:
    """The sensor's one call, after every socket is open: to ``user`` when given (root
    only), else shed the capabilities it was started with. Returns what is left."""
    if user is not None:
        uid, gid = resolve_user(user)
        drop_to_user(uid, gid)
    elif os.geteuid() == 0:
        # root without --user keeps root's file access; say so, it is a choice
        log.warning("running as root: give --user (or run under the systemd unit in deploy/)"
                    " to drop privileges after the capture sockets are open")
        return current()
    else:
        drop_capabilities()
    ident = verify_dropped()
    log.info("privileges dropped: uid=%d gid=%d, no capabilities", ident.uid, ident.gid)
    return ident


__all__ = ["Identity", "PrivilegeError", "current", "drop", "resolve_user", "verify_dropped"]
