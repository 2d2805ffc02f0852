#!/usr/bin/env python3
"""Watches paths with inotify (as reloaders do) and prints one JSON line per event.

Usage: inotify-watch.py PATH...   Prints {"ready": true} once every watch is set,
then {"watch": PATH, "name": NAME, "events": ["CREATE", ...]} for each event.
Access, open and close-nowrite events are left out: reads are not what we watch.
"""
import ctypes, json, os, struct, sys

NAMES = {
    0x1: 'ACCESS', 0x2: 'MODIFY', 0x4: 'ATTRIB', 0x8: 'CLOSE_WRITE', 0x10: 'CLOSE_NOWRITE', 0x20: 'OPEN',
    0x40: 'MOVED_FROM', 0x80: 'MOVED_TO', 0x100: 'CREATE', 0x200: 'DELETE', 0x400: 'DELETE_SELF',
    0x800: 'MOVE_SELF', 0x2000: 'UNMOUNT', 0x4000: 'Q_OVERFLOW', 0x8000: 'IGNORED', 0x40000000: 'ISDIR',
}
QUIET = 0x1 | 0x10 | 0x20
ALL = 0xfff

libc = ctypes.CDLL('libc.so.6', use_errno=True)
fd = libc.inotify_init1(0)
if fd < 0:
    sys.exit('inotify_init1: errno %d' % ctypes.get_errno())
watches = {}
for path in sys.argv[1:]:
    wd = libc.inotify_add_watch(fd, path.encode(), ALL)
    if wd < 0:
        sys.exit('inotify_add_watch %s: errno %d' % (path, ctypes.get_errno()))
    watches[wd] = path
print(json.dumps({'ready': True}), flush=True)
while True:
    buf = os.read(fd, 65536)
    off = 0
    while off < len(buf):
        wd, mask, _cookie, length = struct.unpack_from('iIII', buf, off)
        name = buf[off + 16:off + 16 + length].rstrip(b'\0').decode('utf-8', 'replace')
        off += 16 + length
        if mask & QUIET and not mask & ~(QUIET | 0x40000000):
            continue
        events = [v for k, v in NAMES.items() if mask & k and not k & QUIET]
        print(json.dumps({'watch': watches.get(wd, '?'), 'name': name, 'events': events}), flush=True)
