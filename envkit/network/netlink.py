"""A small rtnetlink client: the few link, address and route requests envkit makes.

The requests are the ones ``ip link add ... type bridge|veth``, ``ip link set``, ``ip addr
add`` and ``ip route replace default`` send, packed with :mod:`struct` on a plain
``AF_NETLINK`` socket. It replaces a general netlink library on the container start path:
importing pyroute2 took about 0.1-0.2 s, longer than all the netlink work of a start.

A socket works in the network namespace of the thread that made it, so make a
:class:`Route` after joining the namespace it is meant for.
"""

from __future__ import annotations

import os
import socket
import struct
from types import TracebackType

NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

IFF_UP = 0x1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src len, tos, table, ..., flags
_ERROR = struct.Struct("=i")


def attr(kind: int, payload: bytes) -> bytes:
    """One ``rtattr`` (type-length-value), padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _ifinfo(index: int = 0, up: bool | None = None) -> bytes:
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def _link_kind(kind: str, data: bytes = b"") -> bytes:
    info = attr(IFLA_INFO_KIND, _string(kind))
    if data:
        info += attr(IFLA_INFO_DATA, data)
    return attr(IFLA_LINKINFO, info)


class Route:
    """An ``AF_NETLINK``/``NETLINK_ROUTE`` socket of the calling thread's namespace.

    Every request waits for the kernel's acknowledgement; a refused one raises
    :class:`OSError` with the kernel's errno and a message naming the request.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def __enter__(self) -> Route:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send one request and wait for its acknowledgement (``what`` names it in errors)."""
        self._seq += 1
        seq = self._seq
        message = _HEADER.pack(
            _HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0
        )
        self._sock.send(message + body)
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply, _, reply_seq, _ = _HEADER.unpack_from(data, offset)
                if reply_seq == seq and reply in (NLMSG_ERROR, NLMSG_DONE):
                    code = (
                        _ERROR.unpack_from(data, offset + _HEADER.size)[0]
                        if reply == NLMSG_ERROR
                        else 0
                    )
                    if code:
                        raise OSError(-code, f"{what}: {os.strerror(-code)}")
                    return
                offset += max(_HEADER.size, (length + 3) & ~3)

    @staticmethod
    def index(name: str) -> int | None:
        """The interface index of link ``name`` here, ``None`` when there is none."""
        try:
            return socket.if_nametoindex(name)
        except OSError:
            return None

    @staticmethod
    def names() -> list[str]:
        """The names of every link here."""
        return [name for _, name in socket.if_nameindex()]

    def set_link(self, index: int, up: bool | None = None, master: int | None = None) -> None:
        """Bring link ``index`` up (or down) and/or enslave it to bridge ``master``."""
        attrs = attr(IFLA_MASTER, _u32(master)) if master is not None else b""
        self.request(RTM_NEWLINK, 0, _ifinfo(index, up) + attrs, f"setting link {index}")

    def add_bridge(self, name: str) -> None:
        """Create bridge ``name`` (down); :class:`OSError` EEXIST if it exists."""
        body = _ifinfo() + attr(IFLA_IFNAME, _string(name)) + _link_kind("bridge")
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"creating bridge {name}")

    def add_veth(self, name: str, peer: str, peer_netns_fd: int) -> None:
        """Create veth pair ``name`` here and ``peer`` in the namespace ``peer_netns_fd``."""
        peer_info = _ifinfo() + attr(IFLA_IFNAME, _string(peer))
        peer_info += attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
        body = _ifinfo() + attr(IFLA_IFNAME, _string(name))
        body += _link_kind("veth", attr(VETH_INFO_PEER, peer_info))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"creating veth {name}")

    def delete_link(self, index: int) -> None:
        """Delete link ``index`` (a veth takes its peer along)."""
        self.request(RTM_DELLINK, 0, _ifinfo(index), f"deleting link {index}")

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """Add IPv4 ``address/prefixlen`` to link ``index``; EEXIST if it is there."""
        packed = socket.inet_aton(address)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        what = f"adding address {address}/{prefixlen} to link {index}"
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def replace_default_route(self, gateway: str) -> None:
        """The IPv4 default route through ``gateway``, replacing any other."""
        body = _RTMSG.pack(
            socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        )
        body += attr(RTA_GATEWAY, socket.inet_aton(gateway))
        what = f"default route via {gateway}"
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body, what)
