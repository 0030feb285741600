/*
 * agent._fastcore: the per-packet floor of medtap's hot path, in C.
 *
 * Three small types, all behind contracts the pure-Python code defines and tests:
 *
 *   Lane(table, flow_type, syn_sent, closed_timeout)
 *       A callable ``(frame, ts, wirelen) -> bool`` doing exactly what
 *       ``agent.fastlane.fast_lane(table)`` does: count one packet of an established,
 *       uninteresting flow, or return False and leave everything untouched so the layered
 *       path (the single source of truth for state) takes the packet. It may return False
 *       where Python would count (an int beyond long long, a Flow subclass): never the
 *       other way round. Flows are found in ``table._flows`` itself, through a key cache.
 *
 *   PcapWalker(buf, pos, big_endian, scale, linktype, maxcap, refill)
 *       An iterator over classic-pcap records yielding ``(ts, linktype, data, wirelen)``
 *       exactly as ``agent.capture.pcapfile`` does. I/O and the damage policy (corrupt or
 *       truncated records, warnings, closing the file) stay in Python: when the buffered
 *       bytes hold no further complete record the walker calls ``refill(buf, pos, count)``,
 *       which returns the next ``(buf, pos)`` or None at the end. ``buf`` is any object with
 *       the buffer protocol (bytes, or a memoryview of a buffer Python reuses without
 *       resizing it); frames are always copied out into new ``bytes``. With a Lane attached
 *       (``attach``), Ethernet records the lane handles never become Python objects; only
 *       the others are yielded.
 *
 *   RingWalker(ring, block_size, blocks, linktype, block=0)
 *       An iterator over the frames of a TPACKET_V3 receive ring (the writable mmap of
 *       ``agent.sensor.ring``), yielding ``(ts, linktype, data, wirelen)`` exactly as
 *       ``RingSource``'s Python loop does. It walks the blocks the kernel handed over, in
 *       ring order, gives each back once its frames are consumed, and raises StopIteration
 *       at the first block not ready; polling stays in Python, which iterates it again.
 *       With a Lane attached, Ethernet frames the lane handles never become Python objects.
 *
 * Hostile input: every length is checked against the buffer before a byte is read, all
 * arithmetic on lengths is in Py_ssize_t (64-bit) on values bounded by the checks, and
 * nothing is allocated from a length field beyond the caplen <= maxcap frame copy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define MIN_FRAME 42  /* agent.fastlane.MIN_FRAME: Ethernet + IPv4 + UDP headers */
#define ONE_UNPACK 52 /* agent.fastlane.ONE_UNPACK: bytes the one-unpack case reads */
#define TCP_CONTROL 0x07 /* FIN, SYN, RST: state changes belong to FlowTable */
#define LINKTYPE_ETHERNET 1
#define RECORD_HEADER_LEN 16

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

static inline uint32_t rd32(const unsigned char *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* ---------------------------------------------------------------------------------------
 * Lane
 * ------------------------------------------------------------------------------------- */

/* Flow slots the lane reads or writes. Flow uses __slots__, so each is a member descriptor
 * with a fixed offset in the object: reading the offsets once (and checking the exact type
 * of every flow) replaces ten attribute look-ups per packet by ten loads. */
enum {
    S_APP_STATE, S_LAST_SEEN, S_TCP_STATE, S_CLIENT_PORT, S_CLIENT_IP,
    S_PACKETS_C2S, S_BYTES_C2S, S_FIRST_C2S, S_LAST_C2S,
    S_PACKETS_S2C, S_BYTES_S2C, S_FIRST_S2C, S_LAST_S2C,
    S_KEY, S_RKEY,
    N_SLOTS
};
static const char *const slot_names[N_SLOTS] = {
    "app_state", "last_seen", "tcp_state", "client_port", "client_ip",
    "packets_c2s", "bytes_c2s", "first_c2s", "last_c2s",
    "packets_s2c", "bytes_s2c", "first_s2c", "last_s2c",
    "key", "rkey",
};

/* Key cache. A packet's flow key is a 7-tuple of fresh objects: building it, hashing it and
 * comparing it with the dict's stored key (whose elements are scattered in memory) costs more
 * than everything else the lane does. The cache maps the key's packed bytes to a tuple *equal*
 * to the key (the dict's own key object when we have it, so the dict matches it by identity)
 * and its hash. Any equal tuple gives exactly the lookup the Python lane makes, so entries
 * never go stale: a flow that ended is simply not found, a new flow under the same key is.
 * Bounded: CACHE_SIZE entries, each holding at most one tuple. */
#define PACKED_LEN 44 /* proto, alen, vlan, inner, flags, pad, sport, dport, src[16], dst[16] */
#define CACHE_BITS 15
#define CACHE_SIZE (1u << CACHE_BITS)
typedef struct {
    unsigned char packed[PACKED_LEN];
    uint32_t pad;
    Py_hash_t hash;
    PyObject *tuple; /* strong reference, NULL if empty */
} CacheEntry;      /* 64 bytes: one cache line */


typedef struct {
    PyObject_HEAD
    PyObject *table;          /* FlowTable: ``_next_sweep`` is re-read on every entry */
    PyObject *flows;          /* table._flows, the dict both directions' keys live in */
    PyTypeObject *flow_type;  /* flows of any other type fall back to the layered path */
    PyObject *syn_sent;       /* TcpState.SYN_SENT */
    double closed_timeout;    /* TCP_CLOSED_TIMEOUT, the shortest idle timeout */
    double next_sweep;        /* cached table._next_sweep, valid while no Python code runs */
    Py_ssize_t off[N_SLOTS];
    vectorcallfunc vectorcall;
    CacheEntry *cache;        /* CACHE_SIZE entries, 64-byte aligned inside cache_mem */
    void *cache_mem;
    unsigned long long cache_hits, cache_misses;
} LaneObject;

static PyObject *str_next_sweep; /* interned "_next_sweep" */
static PyObject *str_flows;      /* interned "_flows" */
static PyObject *str_idle_timeout; /* interned "_idle_timeout" */

#define SLOT(obj, i) (*(PyObject **)((char *)(obj) + ln->off[(i)]))

static int lane_refresh(LaneObject *ln)
{
    /* The table's sweep deadline moves only inside FlowTable.update (Python): read it each
     * time C code is entered from Python, never inside the C loop. */
    PyObject *v = PyObject_GetAttr(ln->table, str_next_sweep);
    if (v == NULL)
        return -1;
    double d = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    ln->next_sweep = d;
    return 0;
}

/* Read a PyLong slot as a long long; 0 with *ok = 0 when it is not a plain int that fits. */
static long long slot_ll(PyObject *v, int *ok)
{
    if (v == NULL || !PyLong_CheckExact(v)) {
        *ok = 0;
        return 0;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        *ok = 0;
        return 0;
    }
    return x;
}

/* What FlowTable.update keys a packet by: (vlan, inner_vlan, proto, src, sport, dst, dport) */
typedef struct {
    long vlan, inner;        /* -1: None */
    unsigned proto, sport, dport;
    const unsigned char *src, *dst;
    Py_ssize_t alen;         /* address length: 4 or 16 */
    int bare_ack;            /* TCP without payload (and without SYN/FIN/RST) */
} FlowKey;

static inline int is_tpid(unsigned t) { return t == 0x8100 || t == 0x88A8 || t == 0x9100; }

/* agent.fastlane.other_key: QinQ, IPv6 without extension headers, ICMP. 1: key filled,
 * 0: not for the lane. */
static int other_key(const unsigned char *f, Py_ssize_t size, FlowKey *k)
{
    Py_ssize_t off = 14, end;
    if (size < MIN_FRAME) /* also keeps the two tags read below (bytes 12..21) inside */
        return 0;
    unsigned ethertype = be16(f + 12);
    k->vlan = k->inner = -1;
    if (is_tpid(ethertype)) {
        k->vlan = (long)(be16(f + 14) & 0x0FFF);
        if (k->vlan == 0)
            k->vlan = -1; /* VID 0 is a priority tag: no VLAN */
        ethertype = be16(f + 16);
        off = 18;
        if (is_tpid(ethertype)) {
            k->inner = (long)(be16(f + 18) & 0x0FFF); /* inner VID kept as it is, 0 too */
            ethertype = be16(f + 20);
            off = 22;
            if (is_tpid(ethertype))
                return 0; /* a third tag: the decoder counts it as malformed */
        }
    }
    if (ethertype == ETH_IPV4) {
        if (size < off + 20)
            return 0;
        const unsigned char *ip = f + off;
        end = off + (Py_ssize_t)be16(ip + 2);
        if (ip[0] != 0x45 || (be16(ip + 6) & 0x3FFF) || end > size)
            return 0;
        k->proto = ip[9];
        k->src = ip + 12;
        k->dst = ip + 16;
        k->alen = 4;
        off += 20;
    } else if (ethertype == ETH_IPV6) {
        if (size < off + 40 || (f[off] >> 4) != 6)
            return 0;
        const unsigned char *ip = f + off;
        end = off + 40 + (Py_ssize_t)be16(ip + 4);
        if (end > size)
            return 0;
        k->proto = ip[6];
        k->src = ip + 8;
        k->dst = ip + 24;
        k->alen = 16;
        off += 40;
    } else {
        return 0;
    }
    /* from here every read is below `end`, and end <= size */
    const unsigned char *l4 = f + off;
    if (k->proto == PROTO_TCP) {
        if (end - off < 20)
            return 0;
        Py_ssize_t hlen = (Py_ssize_t)(l4[12] >> 4) * 4;
        if ((l4[13] & TCP_CONTROL) || hlen < 20 || off + hlen > end)
            return 0;
        k->sport = be16(l4);
        k->dport = be16(l4 + 2);
        k->bare_ack = off + hlen == end;
    } else if (k->proto == PROTO_UDP) {
        if (end - off < 8)
            return 0;
        Py_ssize_t length = be16(l4 + 4);
        if (length < 8 || off + length > end)
            return 0;
        k->sport = be16(l4);
        k->dport = be16(l4 + 2);
        k->bare_ack = 0;
    } else if (k->proto == PROTO_ICMP || k->proto == PROTO_ICMPV6) {
        if (end - off < 4)
            return 0;
        k->sport = k->dport = 0; /* FlowTable: one flow per host pair and protocol */
        k->bare_ack = 0;
    } else {
        return 0;
    }
    return 1;
}

/* agent.fastlane's dispatch: the one-unpack case (Ethernet, one 802.1Q tag, IPv4, TCP/UDP)
 * first, everything else through other_key. Same checks in the same order. */
static int lane_key(const unsigned char *f, Py_ssize_t size, FlowKey *k)
{
    unsigned ethertype, total_len, frag, proto;
    Py_ssize_t off;
    if (size < ONE_UNPACK) /* short: the general parse, which checks every length */
        return other_key(f, size, k);
    k->vlan = k->inner = -1;
    if (f[12] == 0x81 && f[13] == 0x00) { /* from here on every fixed offset is < 52 */
        k->vlan = (long)(be16(f + 14) & 0x0FFF);
        if (k->vlan == 0)
            k->vlan = -1;
        ethertype = be16(f + 16);
        off = 18;
    } else {
        ethertype = be16(f + 12);
        off = 14;
    }
    const unsigned char *ip = f + off; /* 20 bytes of IPv4 + 14 of TCP/UDP: below 52 */
    proto = ip[9];
    if (ethertype != ETH_IPV4 || (proto != PROTO_TCP && proto != PROTO_UDP))
        return other_key(f, size, k);
    total_len = be16(ip + 2);
    frag = be16(ip + 6);
    Py_ssize_t end = off + (Py_ssize_t)total_len;
    if (ip[0] != 0x45 || (frag & 0x3FFF) || end > size)
        return 0;
    off += 20;
    const unsigned char *l4 = f + off;
    if (proto == PROTO_TCP) {
        Py_ssize_t hlen = (Py_ssize_t)(l4[12] >> 4) * 4;
        if (total_len < 40 || (l4[13] & TCP_CONTROL) || hlen < 20 || off + hlen > end)
            return 0;
        k->bare_ack = off + hlen == end;
    } else {
        Py_ssize_t length = be16(l4 + 4);
        if (total_len < 28 || length < 8 || off + length > end)
            return 0;
        k->bare_ack = 0;
    }
    k->proto = proto;
    k->sport = be16(l4);
    k->dport = be16(l4 + 2);
    k->src = ip + 12;
    k->dst = ip + 16;
    k->alen = 4;
    return 1;
}

/* The key's bytes for the cache: fixed layout, unused address bytes zero. Returns the
 * cache index (a multiplicative hash of the packed words). */
static size_t pack_key(const FlowKey *k, unsigned char *p)
{
    memset(p, 0, PACKED_LEN);
    p[0] = (unsigned char)k->proto;
    p[1] = (unsigned char)k->alen;
    p[2] = (unsigned char)((k->vlan >= 0 ? k->vlan : 0) >> 8);
    p[3] = (unsigned char)(k->vlan >= 0 ? k->vlan : 0);
    p[4] = (unsigned char)((k->inner >= 0 ? k->inner : 0) >> 8);
    p[5] = (unsigned char)(k->inner >= 0 ? k->inner : 0);
    p[6] = (unsigned char)((k->vlan >= 0) | (k->inner >= 0) << 1);
    p[8] = (unsigned char)(k->sport >> 8);
    p[9] = (unsigned char)k->sport;
    p[10] = (unsigned char)(k->dport >> 8);
    p[11] = (unsigned char)k->dport;
    memcpy(p + 12, k->src, (size_t)k->alen); /* alen is 4 or 16: fits 16 */
    memcpy(p + 28, k->dst, (size_t)k->alen);
    uint64_t h = 0, w;
    for (int i = 0; i + 8 <= PACKED_LEN; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    }
    uint32_t t;
    memcpy(&t, p + 40, 4);
    h = (h ^ t) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> (64 - CACHE_BITS));
}

static PyObject *vlan_obj(long v) { return v < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(v); }

/* (vlan, inner_vlan, proto, src, sport, dst, dport), as FlowTable.update builds it */
static PyObject *make_key(const FlowKey *k)
{
    PyObject *key = PyTuple_New(7);
    if (key == NULL)
        return NULL;
    PyObject *items[7] = {
        vlan_obj(k->vlan),
        vlan_obj(k->inner),
        PyLong_FromLong((long)k->proto),
        PyBytes_FromStringAndSize((const char *)k->src, k->alen),
        PyLong_FromLong((long)k->sport),
        PyBytes_FromStringAndSize((const char *)k->dst, k->alen),
        PyLong_FromLong((long)k->dport),
    };
    int failed = 0;
    for (int i = 0; i < 7; i++) {
        if (items[i] == NULL)
            failed = 1;
        PyTuple_SET_ITEM(key, i, items[i]); /* NULL items are skipped by tuple dealloc */
    }
    if (failed) {
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* Remember `key` (found in the dict, value `flow`) under `packed`. Prefer the dict's own key
 * object, flow.key or flow.rkey, whichever equals it: the dict then matches by identity. */
static int cache_store(LaneObject *ln, CacheEntry *e, const unsigned char *packed,
                       PyObject *key, PyObject *flow)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1)
        return -1;
    PyObject *keep = key;
    for (int i = S_KEY; i <= S_RKEY; i++) {
        PyObject *stored = SLOT(flow, i);
        if (stored == NULL || !PyTuple_CheckExact(stored))
            continue;
        int eq = PyObject_RichCompareBool(stored, key, Py_EQ);
        if (eq < 0)
            return -1;
        if (eq) {
            keep = stored;
            break;
        }
    }
    Py_XSETREF(e->tuple, Py_NewRef(keep)); /* the old entry is a tuple of ints/bytes/None */
    memcpy(e->packed, packed, PACKED_LEN);
    e->hash = hash;
    return 0;
}

static int lane_flow(LaneObject *ln, PyObject *flow, const FlowKey *k, double ts,
                     PyObject *ts_obj, unsigned long long wirelen);

/*
 * The fast-lane decision and update for one Ethernet frame, mirroring agent/fastlane.py.
 * Returns 1 if handled (flow updated), 0 if the layered path must take the frame (nothing
 * changed), -1 with an exception set. ``ts_obj`` is the timestamp object to store (a new
 * reference is taken); when NULL a float is made from ``ts`` only if needed.
 */
static int lane_try(LaneObject *ln, const unsigned char *f, Py_ssize_t size, double ts,
                    PyObject *ts_obj, unsigned long long wirelen)
{
    FlowKey k;
    if (!lane_key(f, size, &k))
        return 0;
    unsigned char packed[PACKED_LEN];
    CacheEntry *e = &ln->cache[pack_key(&k, packed)];
    PyObject *flow;
    int cached = e->tuple != NULL && memcmp(e->packed, packed, PACKED_LEN) == 0;
    if (cached) {
        ln->cache_hits++;
        flow = _PyDict_GetItem_KnownHash(ln->flows, e->tuple, e->hash); /* borrowed */
    } else {
        ln->cache_misses++;
        PyObject *key = make_key(&k);
        if (key == NULL)
            return -1;
        flow = PyDict_GetItemWithError(ln->flows, key); /* borrowed */
        if (flow != NULL && Py_TYPE(flow) == ln->flow_type && cache_store(ln, e, packed, key,
                                                                          flow) < 0) {
            Py_DECREF(key);
            return -1;
        }
        Py_DECREF(key);
    }
    if (flow == NULL)
        return PyErr_Occurred() ? -1 : 0; /* no flow: FlowTable creates it */
    if (Py_TYPE(flow) != ln->flow_type)
        return 0; /* a subclass may behave differently: the layered path decides */
    Py_INCREF(flow); /* held until we are done, whatever the calls below run */
    int r = lane_flow(ln, flow, &k, ts, ts_obj, wirelen);
    Py_DECREF(flow);
    return r;
}

/* The flow half of lane_try: checks, then the counter update. Same return values. */
static int lane_flow(LaneObject *ln, PyObject *flow, const FlowKey *k, double ts,
                     PyObject *ts_obj, unsigned long long wirelen)
{
    /* Every read and check before the first write, so "not handled" changes nothing. */
    PyObject *app_state = SLOT(flow, S_APP_STATE);
    PyObject *last_seen = SLOT(flow, S_LAST_SEEN);
    PyObject *tcp_state = SLOT(flow, S_TCP_STATE);
    if ((app_state != Py_None && !k->bare_ack) || last_seen == NULL ||
        !PyFloat_CheckExact(last_seen) || tcp_state == NULL)
        return 0; /* detection/parsing work (a bare ACK has none), or an unusual flow */
    double seen = PyFloat_AS_DOUBLE(last_seen);
    if (ts >= ln->next_sweep)
        return 0; /* due sweep: the table must run it first */
    int r = PyObject_RichCompareBool(tcp_state, ln->syn_sent, Py_EQ);
    if (r != 0)
        return r < 0 ? -1 : 0; /* handshake still open: ACK moves it to ESTABLISHED */
    if (ts - seen > ln->closed_timeout) {
        /* Quiet for longer than the shortest timeout (rare): ask the table for this flow's
         * own, so the rule lives in one place (FlowTable._idle_timeout). */
        PyObject *t = PyObject_CallMethodOneArg(ln->table, str_idle_timeout, flow);
        if (t == NULL)
            return -1;
        double timeout = PyFloat_AsDouble(t);
        Py_DECREF(t);
        if (timeout == -1.0 && PyErr_Occurred())
            return -1;
        if (ts - seen > timeout)
            return 0; /* idle past its timeout: FlowTable ends it before a new flow starts */
    }

    PyObject *cport = SLOT(flow, S_CLIENT_PORT);
    PyObject *cip = SLOT(flow, S_CLIENT_IP);
    int ok = 1;
    long long port = slot_ll(cport, &ok);
    if (!ok || cip == NULL || !PyBytes_CheckExact(cip))
        return 0;
    int c2s = port == (long long)k->sport && PyBytes_GET_SIZE(cip) == k->alen &&
              memcmp(PyBytes_AS_STRING(cip), k->src, (size_t)k->alen) == 0;
    int sp = c2s ? S_PACKETS_C2S : S_PACKETS_S2C;
    int sb = c2s ? S_BYTES_C2S : S_BYTES_S2C;
    int sf = c2s ? S_FIRST_C2S : S_FIRST_S2C;
    int sl = c2s ? S_LAST_C2S : S_LAST_S2C;
    long long packets = slot_ll(SLOT(flow, sp), &ok);
    long long nbytes = slot_ll(SLOT(flow, sb), &ok);
    if (!ok || packets < 0 || nbytes < 0 || packets == LLONG_MAX ||
        wirelen > (unsigned long long)LLONG_MAX ||
        (unsigned long long)nbytes > (unsigned long long)LLONG_MAX - wirelen)
        return 0; /* beyond long long: Python's ints take it */

    /* Allocate everything first so a MemoryError cannot leave the flow half updated. */
    PyObject *new_packets = PyLong_FromLongLong(packets + 1);
    PyObject *new_bytes = PyLong_FromLongLong(nbytes + (long long)wirelen);
    PyObject *tso = ts_obj != NULL ? Py_NewRef(ts_obj) : PyFloat_FromDouble(ts);
    if (new_packets == NULL || new_bytes == NULL || tso == NULL) {
        Py_XDECREF(new_packets);
        Py_XDECREF(new_bytes);
        Py_XDECREF(tso);
        return -1;
    }
    /* Old values are ints and floats: releasing them runs no Python code. */
    if (packets == 0)
        Py_XSETREF(SLOT(flow, sf), Py_NewRef(tso));
    Py_XSETREF(SLOT(flow, sp), new_packets);
    Py_XSETREF(SLOT(flow, sb), new_bytes);
    Py_XSETREF(SLOT(flow, sl), Py_NewRef(tso));
    if (ts > seen)
        Py_XSETREF(SLOT(flow, S_LAST_SEEN), Py_NewRef(tso));
    Py_DECREF(tso);
    return 1;
}

static PyObject *Lane_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    LaneObject *ln = (LaneObject *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "Lane() takes no keyword arguments");
        return NULL;
    }
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "Lane() takes 3 arguments (frame, ts, wirelen), %zd given",
                     nargs);
        return NULL;
    }
    PyObject *frame = args[0], *ts_obj = args[1], *wl = args[2];
    if (!PyBytes_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "frame must be bytes");
        return NULL;
    }
    double ts = PyFloat_AsDouble(ts_obj);
    if (ts == -1.0 && PyErr_Occurred())
        return NULL;
    if (!PyLong_Check(wl)) {
        PyErr_SetString(PyExc_TypeError, "wirelen must be an int");
        return NULL;
    }
    unsigned long long wirelen = PyLong_AsUnsignedLongLong(wl);
    if (wirelen == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or huge: not the common case, the layered path counts it */
        Py_RETURN_FALSE;
    }
    if (lane_refresh(ln) < 0)
        return NULL;
    int r = lane_try(ln, (const unsigned char *)PyBytes_AS_STRING(frame),
                     PyBytes_GET_SIZE(frame), ts, ts_obj, wirelen);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *Lane_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"table", "flow_type", "syn_sent", "closed_timeout", NULL};
    PyObject *table, *flow_type, *syn_sent;
    double closed_timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!Od:Lane", kwlist, &table, &PyType_Type,
                                     &flow_type, &syn_sent, &closed_timeout))
        return NULL;
    LaneObject *ln = (LaneObject *)type->tp_alloc(type, 0);
    if (ln == NULL)
        return NULL;
    ln->vectorcall = Lane_vectorcall;
    ln->table = Py_NewRef(table);
    ln->flow_type = (PyTypeObject *)Py_NewRef(flow_type);
    ln->syn_sent = Py_NewRef(syn_sent);
    ln->closed_timeout = closed_timeout;
    /* one spare entry's worth of bytes so the table can start on a 64-byte boundary */
    ln->cache_mem = PyMem_RawCalloc((size_t)CACHE_SIZE + 1, sizeof(CacheEntry));
    if (ln->cache_mem == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    ln->cache = (CacheEntry *)(((uintptr_t)ln->cache_mem + 63) & ~(uintptr_t)63);
    ln->flows = PyObject_GetAttr(table, str_flows);
    if (ln->flows == NULL)
        goto fail;
    if (!PyDict_CheckExact(ln->flows)) {
        PyErr_SetString(PyExc_TypeError, "table._flows must be a dict");
        goto fail;
    }
    /* Slot offsets from the type's own member descriptors; anything else is refused. */
    PyObject *tdict = ln->flow_type->tp_dict;
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = tdict ? PyDict_GetItemString(tdict, slot_names[i]) : NULL;
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)d)->d_member->type != Py_T_OBJECT_EX ||
            ((PyMemberDescrObject *)d)->d_member->offset < (Py_ssize_t)sizeof(PyObject)) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ attribute",
                         ln->flow_type->tp_name, slot_names[i]);
            goto fail;
        }
        ln->off[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    if (lane_refresh(ln) < 0)
        goto fail;
    return (PyObject *)ln;
fail:
    Py_DECREF(ln);
    return NULL;
}

static int Lane_traverse(LaneObject *ln, visitproc visit, void *arg)
{
    Py_VISIT(ln->table);
    Py_VISIT(ln->flows);
    Py_VISIT(ln->flow_type);
    Py_VISIT(ln->syn_sent);
    return 0;
}

static void cache_free(LaneObject *ln)
{
    if (ln->cache != NULL) {
        for (size_t i = 0; i < CACHE_SIZE; i++)
            Py_CLEAR(ln->cache[i].tuple);
    }
    PyMem_RawFree(ln->cache_mem);
    ln->cache_mem = NULL;
    ln->cache = NULL;
}

/* The cached tuples hold only ints, bytes and None: they cannot be part of a reference cycle,
 * so traverse does not visit them (32k entries per collection would be wasted work). */
static int Lane_clear(LaneObject *ln)
{
    Py_CLEAR(ln->table);
    Py_CLEAR(ln->flows);
    Py_CLEAR(ln->flow_type);
    Py_CLEAR(ln->syn_sent);
    return 0;
}

static void Lane_dealloc(LaneObject *ln)
{
    PyObject_GC_UnTrack(ln);
    Lane_clear(ln);
    cache_free(ln);
    Py_TYPE(ln)->tp_free((PyObject *)ln);
}

static PyObject *Lane_cache_stats(LaneObject *ln, void *Py_UNUSED(closure))
{
    return Py_BuildValue("KK", ln->cache_hits, ln->cache_misses);
}

static PyGetSetDef Lane_getset[] = {
    {"cache_stats", (getter)Lane_cache_stats, NULL,
     PyDoc_STR("(hits, misses) of the key cache, for benchmarks"), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agent._fastcore.Lane",
    .tp_doc = PyDoc_STR("Lane(table, flow_type, syn_sent, closed_timeout): the fast lane in C; "
                        "call as (frame, ts, wirelen) -> bool"),
    .tp_basicsize = sizeof(LaneObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = Lane_new,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_traverse = (traverseproc)Lane_traverse,
    .tp_clear = (inquiry)Lane_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LaneObject, vectorcall),
    .tp_getset = Lane_getset,
};

/* ---------------------------------------------------------------------------------------
 * PcapWalker
 * ------------------------------------------------------------------------------------- */

/* ``(ts, linktype, data, wirelen)`` with the frame copied out: what both walkers yield. */
static PyObject *frame_tuple(double ts, PyObject *linktype_obj, const unsigned char *data,
                             Py_ssize_t len, unsigned long long wirelen)
{
    PyObject *tso = PyFloat_FromDouble(ts);
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, len);
    PyObject *wl = PyLong_FromUnsignedLongLong(wirelen);
    PyObject *tup = PyTuple_New(4);
    if (tso == NULL || bytes == NULL || wl == NULL || tup == NULL) {
        Py_XDECREF(tso);
        Py_XDECREF(bytes);
        Py_XDECREF(wl);
        Py_XDECREF(tup);
        return NULL;
    }
    PyTuple_SET_ITEM(tup, 0, tso);
    PyTuple_SET_ITEM(tup, 1, Py_NewRef(linktype_obj));
    PyTuple_SET_ITEM(tup, 2, bytes);
    PyTuple_SET_ITEM(tup, 3, wl);
    return tup;
}

/* attach(lane, tick, every)'s arguments, as both walkers take them: a Lane, a callable or
 * None (NULL), and every >= 1. Returns 0, or -1 with an exception set. */
static int parse_attach(PyObject *args, LaneObject **lane, PyObject **tick,
                        unsigned long long *every)
{
    PyObject *lane_obj, *tick_obj;
    if (!PyArg_ParseTuple(args, "O!OK:attach", &LaneType, &lane_obj, &tick_obj, every))
        return -1;
    if (tick_obj != Py_None && !PyCallable_Check(tick_obj)) {
        PyErr_SetString(PyExc_TypeError, "tick must be callable or None");
        return -1;
    }
    if (*every == 0)
        *every = 1;
    *lane = (LaneObject *)lane_obj;
    *tick = tick_obj == Py_None ? NULL : tick_obj;
    return 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *buf;       /* buffer object; records from `pos` on are unread; NULL: finished */
    Py_buffer view;      /* buf's bytes, held while buf is; view.obj NULL when none */
    Py_ssize_t pos;
    PyObject *refill;    /* refill(buf, pos, count) -> (buffer, int) | None */
    PyObject *linktype_obj;
    int linktype;
    int big;             /* record headers big-endian */
    double scale;        /* 1e6 (µs) or 1e9 (ns) */
    Py_ssize_t maxcap;
    unsigned long long count; /* records read, lane-handled ones included */
    LaneObject *lane;    /* NULL: every record is yielded */
    PyObject *tick;      /* called every `tick_every` records while a lane is attached */
    unsigned long long tick_every;
    unsigned long long lane_packets, lane_bytes;
    int running;         /* inside Walker_next: a re-entrant next() would free our buffer */
} WalkerObject;

static void walker_drop_buffer(WalkerObject *w)
{
    if (w->view.obj != NULL)
        PyBuffer_Release(&w->view);
    Py_CLEAR(w->buf);
}

/* Take `obj`'s bytes (a contiguous buffer) from `pos` on; the old buffer is released only
 * after the new one is held, so a failure leaves the walker as it was. */
static int walker_set_buffer(WalkerObject *w, PyObject *obj, Py_ssize_t pos)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return -1;
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "PcapWalker: position outside the buffer");
        return -1;
    }
    walker_drop_buffer(w);
    w->view = view;
    w->buf = Py_NewRef(obj);
    w->pos = pos;
    return 0;
}

static PyObject *Walker_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buf", "pos", "big_endian", "scale", "linktype", "maxcap", "refill",
                             NULL};
    PyObject *buf, *refill;
    Py_ssize_t pos, maxcap;
    int big, linktype;
    double scale;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnpdinO:PcapWalker", kwlist, &buf, &pos,
                                     &big, &scale, &linktype, &maxcap, &refill))
        return NULL;
    if (maxcap < 0 || !(scale > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "PcapWalker: bad maxcap or scale");
        return NULL;
    }
    if (!PyCallable_Check(refill)) {
        PyErr_SetString(PyExc_TypeError, "PcapWalker: refill must be callable");
        return NULL;
    }
    WalkerObject *w = (WalkerObject *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    w->linktype_obj = PyLong_FromLong(linktype);
    if (w->linktype_obj == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    if (walker_set_buffer(w, buf, pos) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    w->refill = Py_NewRef(refill);
    w->linktype = linktype;
    w->big = big;
    w->scale = scale;
    w->maxcap = maxcap;
    return (PyObject *)w;
}

/* Ask Python for more bytes. 1: new buffer in place, 0: finished, -1: exception. */
static int walker_refill(WalkerObject *w)
{
    PyObject *res = PyObject_CallFunction(w->refill, "OnK", w->buf, w->pos, w->count);
    if (res == NULL)
        return -1;
    if (res == Py_None) {
        Py_DECREF(res);
        walker_drop_buffer(w);
        return 0;
    }
    PyObject *nbuf;
    Py_ssize_t npos;
    if (!PyTuple_Check(res) || !PyArg_ParseTuple(res, "On", &nbuf, &npos)) {
        Py_DECREF(res);
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "refill must return (buffer, int) or None");
        }
        return -1;
    }
    int r = walker_set_buffer(w, nbuf, npos);
    Py_DECREF(res);
    return r < 0 ? -1 : 1;
}

static PyObject *walker_next(WalkerObject *w);

static PyObject *Walker_next(WalkerObject *w)
{
    /* refill() and tick() are Python: if they called next() on us, the inner call could
     * replace the buffer the outer one is reading. Refused, as generators do. */
    if (w->running) {
        PyErr_SetString(PyExc_ValueError, "PcapWalker already executing");
        return NULL;
    }
    w->running = 1;
    /* walker_next reads w->lane once; a tick that detach()es must not free it under us */
    PyObject *lane = Py_XNewRef((PyObject *)w->lane);
    PyObject *r = walker_next(w);
    Py_XDECREF(lane);
    w->running = 0;
    return r;
}

static PyObject *walker_next(WalkerObject *w)
{
    LaneObject *ln = w->lane;
    if (ln != NULL && w->linktype != LINKTYPE_ETHERNET)
        ln = NULL;
    if (ln != NULL && lane_refresh(ln) < 0)
        return NULL;
    while (w->buf != NULL) {
        const unsigned char *p = (const unsigned char *)w->view.buf;
        Py_ssize_t n = w->view.len;
        Py_ssize_t pos = w->pos;
        /* n - pos >= 16: the whole record header is in the buffer */
        while (n - pos >= RECORD_HEADER_LEN) {
            const unsigned char *h = p + pos;
            uint32_t sec = rd32(h, w->big), frac = rd32(h + 4, w->big);
            uint32_t caplen = rd32(h + 8, w->big), wirelen = rd32(h + 12, w->big);
            /* caplen <= maxcap and the frame ends inside the buffer, else Python decides
             * (more bytes, a corrupt header, or a truncated last record) */
            if ((Py_ssize_t)caplen > w->maxcap ||
                (Py_ssize_t)caplen > n - pos - RECORD_HEADER_LEN)
                break;
            const unsigned char *frame = h + RECORD_HEADER_LEN;
            Py_ssize_t end = pos + RECORD_HEADER_LEN + (Py_ssize_t)caplen;
            /* same operations as Python's ``sec + frac / scale``: identical doubles */
            double ts = (double)sec + (double)frac / w->scale;
            w->count++;
            if (w->tick != NULL && w->count % w->tick_every == 0) {
                w->pos = pos; /* the record at pos is not consumed until handled */
                PyObject *t = PyObject_CallNoArgs(w->tick);
                Py_XDECREF(t);
                if (t == NULL || (ln != NULL && lane_refresh(ln) < 0)) {
                    w->count--; /* not consumed: a later next() reads it again */
                    return NULL;
                }
            }
            if (ln != NULL) {
                int r = lane_try(ln, frame, (Py_ssize_t)caplen, ts, NULL, wirelen);
                if (r < 0) {
                    w->pos = pos; /* not consumed, as above */
                    w->count--;
                    return NULL;
                }
                if (r) {
                    w->lane_packets++;
                    w->lane_bytes += wirelen;
                    pos = end;
                    continue;
                }
            }
            PyObject *tup = frame_tuple(ts, w->linktype_obj, frame, (Py_ssize_t)caplen, wirelen);
            if (tup == NULL) {
                w->pos = pos; /* not consumed, as above */
                w->count--;
                return NULL;
            }
            w->pos = end;
            return tup;
        }
        w->pos = pos;
        int r = walker_refill(w);
        if (r < 0)
            return NULL;
        if (r > 0 && ln != NULL && lane_refresh(ln) < 0)
            return NULL;
    }
    return NULL; /* finished: StopIteration */
}

static PyObject *Walker_attach(WalkerObject *w, PyObject *args)
{
    LaneObject *lane;
    PyObject *tick;
    unsigned long long every;
    if (parse_attach(args, &lane, &tick, &every) < 0)
        return NULL;
    Py_XSETREF(w->lane, (LaneObject *)Py_NewRef((PyObject *)lane));
    Py_XSETREF(w->tick, Py_XNewRef(tick));
    w->tick_every = every;
    Py_RETURN_NONE;
}

static PyObject *Walker_detach(WalkerObject *w, PyObject *Py_UNUSED(ignored))
{
    PyObject *res = Py_BuildValue("KK", w->lane_packets, w->lane_bytes);
    if (res == NULL)
        return NULL;
    Py_CLEAR(w->lane);
    Py_CLEAR(w->tick);
    w->lane_packets = w->lane_bytes = 0;
    return res;
}

static PyObject *Walker_count(WalkerObject *w, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(w->count);
}

static int Walker_traverse(WalkerObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->buf);
    Py_VISIT(w->refill);
    Py_VISIT(w->linktype_obj);
    Py_VISIT(w->lane);
    Py_VISIT(w->tick);
    return 0;
}

static int Walker_clear(WalkerObject *w)
{
    walker_drop_buffer(w);
    Py_CLEAR(w->refill);
    Py_CLEAR(w->linktype_obj);
    Py_CLEAR(w->lane);
    Py_CLEAR(w->tick);
    return 0;
}

static void Walker_dealloc(WalkerObject *w)
{
    PyObject_GC_UnTrack(w);
    Walker_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef Walker_methods[] = {
    {"attach", (PyCFunction)Walker_attach, METH_VARARGS,
     PyDoc_STR("attach(lane, tick, every): run `lane` on Ethernet records and yield only the "
               "records it does not handle; call tick() every `every` records")},
    {"detach", (PyCFunction)Walker_detach, METH_NOARGS,
     PyDoc_STR("detach() -> (packets, bytes) the lane handled since attach(); removes it")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Walker_getset[] = {
    {"count", (getter)Walker_count, NULL, PyDoc_STR("records read so far"), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agent._fastcore.PcapWalker",
    .tp_doc = PyDoc_STR("PcapWalker(buf, pos, big_endian, scale, linktype, maxcap, refill): "
                        "classic pcap records as (ts, linktype, data, wirelen)"),
    .tp_basicsize = sizeof(WalkerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Walker_new,
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_traverse = (traverseproc)Walker_traverse,
    .tp_clear = (inquiry)Walker_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Walker_next,
    .tp_methods = Walker_methods,
    .tp_getset = Walker_getset,
};

/* ---------------------------------------------------------------------------------------
 * RingWalker
 * ------------------------------------------------------------------------------------- */

/* TPACKET_V3 layout (linux/if_packet.h, Documentation/networking/packet_mmap.rst) as fixed
 * offsets read with memcpy: no Linux headers, so the rest of the file still builds anywhere.
 * Every field is in host byte order. */
#define TP_STATUS_KERNEL 0
#define TP_STATUS_USER 1
#define TP_STATUS_VLAN_VALID 0x10
#define TP_STATUS_VLAN_TPID_VALID 0x40
#define BLOCK_STATUS_OFF 8   /* tpacket_block_desc: version, offset_to_priv, then hdr.bh1: */
#define BLOCK_NUM_PKTS_OFF 12 /* block_status, num_pkts, offset_to_first_pkt, ... */
#define BLOCK_FIRST_OFF 16
#define BLOCK_DESC_LEN 48    /* sizeof(struct tpacket_block_desc): no frame starts inside it */
#define FRAME_HDR_LEN 48     /* sizeof(struct tpacket3_hdr): a frame's header fits the block */
#define FRAME_VLAN_TCI_OFF 32  /* hv1.tp_vlan_tci (u32; the kernel stores 16 bits) */
#define FRAME_VLAN_TPID_OFF 36 /* hv1.tp_vlan_tpid (u16) */
#define VLAN_TAG_LEN 4

#ifndef Py_T_ULONGLONG
#define Py_T_ULONGLONG T_ULONGLONG
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_READONLY READONLY
#endif

static inline uint32_t ld32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline unsigned ld16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

typedef struct {
    PyObject_HEAD
    Py_buffer view;          /* the ring, writable; view.obj NULL once closed */
    Py_ssize_t block_size, nblocks;
    unsigned char *scratch;  /* block_size + 4 bytes: a frame with its 802.1Q tag put back */
    PyObject *linktype_obj;
    int linktype;
    Py_ssize_t block;        /* the block being read, or the next one to wait for */
    int active;              /* `block` is ours: frames idx..count-1 of it are unread */
    uint32_t idx, count;
    Py_ssize_t off, low;     /* frame idx's offset in the block, and the lowest legal one */
    LaneObject *lane;        /* NULL: every frame is yielded */
    PyObject *tick;          /* called every `tick_every` frames while a lane is attached */
    unsigned long long tick_every;
    unsigned long long frames, bytes, vlan_restored, lane_packets, lane_bytes, bad_frames;
    unsigned long long attach_packets, attach_bytes; /* lane counters when attach() ran */
    int running;             /* inside next(): re-entry refused, close() deferred */
    int stopped;             /* stop(): no further block is taken */
    int closing;             /* close() during next(): the buffer goes when next() returns */
} RingObject;

/* One frame of the current block, decoded but not consumed. */
typedef struct {
    const unsigned char *data; /* in the ring, or the scratch copy with the tag put back */
    Py_ssize_t len;
    double ts;
    unsigned long long wirelen;
    int vlan;                  /* the tag was put back */
    uint32_t next;             /* tp_next_offset */
} RingFrame;

static inline unsigned char *ring_block(RingObject *r, Py_ssize_t b)
{
    return (unsigned char *)r->view.buf + b * r->block_size;
}

/* block_status: the one word the kernel and we hand the block over with (aligned: checked in
 * Ring_new). Acquire on read, release on write: the block's bytes are the kernel's before
 * the one and after the other, never read across. */
static inline uint32_t *ring_status(RingObject *r, Py_ssize_t b)
{
    return (uint32_t *)(void *)(ring_block(r, b) + BLOCK_STATUS_OFF);
}

static inline int ring_ready(RingObject *r, Py_ssize_t b)
{
    return (__atomic_load_n(ring_status(r, b), __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
}

/* Give the current block back to the kernel (every read of it is done) and move on. */
static void ring_release(RingObject *r)
{
    __atomic_store_n(ring_status(r, r->block), (uint32_t)TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    r->active = 0;
    r->block = (r->block + 1) % r->nblocks;
}

/* Take the current block if the kernel handed it over: 1 taken, 0 not ready. */
static int ring_take(RingObject *r)
{
    if (!ring_ready(r, r->block))
        return 0;
    const unsigned char *b = ring_block(r, r->block);
    r->count = ld32(b + BLOCK_NUM_PKTS_OFF);
    r->off = (Py_ssize_t)ld32(b + BLOCK_FIRST_OFF); /* checked with the frame, below */
    r->low = BLOCK_DESC_LEN;
    r->idx = 0;
    r->active = 1;
    return 1;
}

/* Decode frame idx of the current block. 0: it lies outside the block (the header, or the
 * data at tp_mac + tp_snaplen), or starts before the end of the previous frame's header (a
 * next_offset below the header size would walk in place). Nothing is read before its check;
 * off <= block_size, mac < 2^16 and snaplen < 2^32 cannot overflow 64-bit arithmetic. */
static int ring_frame(RingObject *r, RingFrame *fr)
{
    Py_ssize_t off = r->off, bs = r->block_size;
    if (off < r->low || off > bs - FRAME_HDR_LEN)
        return 0;
    const unsigned char *h = ring_block(r, r->block) + off;
    uint32_t snaplen = ld32(h + 12), status = ld32(h + 20);
    Py_ssize_t start = off + (Py_ssize_t)ld16(h + 24);
    if (start > bs || (unsigned long long)snaplen > (unsigned long long)(bs - start))
        return 0;
    fr->next = ld32(h);
    /* Python's ``sec + nsec * 1e-9``: two roundings in two statements (never fused into an
     * FMA, which -std=c11 does not do across statements), so the doubles are identical. */
    double frac = (double)ld32(h + 8) * 1e-9;
    fr->ts = (double)ld32(h + 4) + frac;
    fr->wirelen = ld32(h + 16);
    fr->data = h - off + start;
    fr->len = (Py_ssize_t)snaplen;
    fr->vlan = 0;
    if ((status & TP_STATUS_VLAN_VALID) && r->linktype == LINKTYPE_ETHERNET && snaplen >= 12) {
        /* the NIC or the kernel took the tag out: put it back after the two addresses */
        unsigned tci = ld32(h + FRAME_VLAN_TCI_OFF) & 0xFFFF;
        unsigned tpid = (status & TP_STATUS_VLAN_TPID_VALID) ? ld16(h + FRAME_VLAN_TPID_OFF)
                                                             : 0x8100;
        unsigned char *s = r->scratch; /* block_size + 4 bytes, snaplen <= block_size */
        memcpy(s, fr->data, 12);
        s[12] = (unsigned char)(tpid >> 8);
        s[13] = (unsigned char)tpid;
        s[14] = (unsigned char)(tci >> 8);
        s[15] = (unsigned char)tci;
        memcpy(s + 12 + VLAN_TAG_LEN, fr->data + 12, (size_t)snaplen - 12);
        fr->data = s;
        fr->len += VLAN_TAG_LEN;
        fr->wirelen += VLAN_TAG_LEN;
        fr->vlan = 1;
    }
    return 1;
}

/* The frame is handed on (yielded or counted by the lane): count it and step to the next;
 * the block goes back to the kernel as soon as its last frame is consumed. */
static void ring_consume(RingObject *r, const RingFrame *fr)
{
    r->frames++;
    r->bytes += fr->wirelen;
    r->vlan_restored += (unsigned long long)fr->vlan;
    r->idx++;
    r->low = r->off + FRAME_HDR_LEN;
    /* a next_offset past the block is clamped to its end, which ring_frame refuses */
    r->off = fr->next > (uint32_t)(r->block_size - r->off) ? r->block_size
                                                            : r->off + (Py_ssize_t)fr->next;
    if (r->idx >= r->count)
        ring_release(r);
}

/* Call tick(). The frame being handled is not consumed yet: if tick raises, the next call
 * reads it again (and ticks again); if tick calls stop(), it is still handed on, as is the
 * rest of its block. 0, or -1 with an exception. */
static int ring_tick(RingObject *r)
{
    PyObject *fn = Py_NewRef(r->tick); /* tick may replace itself through attach/detach */
    PyObject *res = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    /* Python ran: the lane (maybe another one now) must re-read the table's sweep time */
    if (r->lane != NULL && lane_refresh(r->lane) < 0)
        return -1;
    return 0;
}

/* The next frame the lane does not take; NULL without an exception: no block ready (or
 * stopped at a block boundary, or closed). A frame is consumed only once it is handled, so
 * an error leaves it to be read again. */
static PyObject *ring_next(RingObject *r)
{
    int eth = r->linktype == LINKTYPE_ETHERNET;
    if (eth && r->lane != NULL && lane_refresh(r->lane) < 0)
        return NULL;
    for (;;) {
        if (!r->active && (r->stopped || !ring_take(r)))
            return NULL;
        if (r->idx >= r->count) { /* an empty block, or a hostile num_pkts of 0 */
            ring_release(r);
            continue;
        }
        RingFrame fr;
        if (!ring_frame(r, &fr)) { /* the rest of the block cannot be trusted: skipped */
            r->bad_frames++;
            ring_release(r);
            continue;
        }
        if (r->tick != NULL && (r->frames + 1) % r->tick_every == 0) {
            if (ring_tick(r) < 0)
                return NULL;
            if (r->closing)
                return NULL; /* closed from the tick: no further read of the ring */
        }
        LaneObject *ln = eth ? r->lane : NULL; /* re-read: a tick may have detached it */
        if (ln != NULL) {
            Py_INCREF(ln); /* lane_try may run Python code (a detach() among it) */
            int took = lane_try(ln, fr.data, fr.len, fr.ts, NULL, fr.wirelen);
            Py_DECREF(ln);
            if (took < 0)
                return NULL;
            if (took) {
                r->lane_packets++;
                r->lane_bytes += fr.wirelen;
                ring_consume(r, &fr);
                continue;
            }
        }
        PyObject *tup = frame_tuple(fr.ts, r->linktype_obj, fr.data, fr.len, fr.wirelen);
        if (tup != NULL)
            ring_consume(r, &fr);
        return tup;
    }
}

static void ring_drop_buffer(RingObject *r)
{
    if (r->view.obj != NULL)
        PyBuffer_Release(&r->view);
    r->active = 0;
}

static PyObject *Ring_next(RingObject *r)
{
    /* tick() is Python: a next() from inside it would walk the block the outer call is in
     * the middle of. Refused, as generators do. */
    if (r->running) {
        PyErr_SetString(PyExc_ValueError, "RingWalker already executing");
        return NULL;
    }
    if (r->view.obj == NULL)
        return NULL; /* closed */
    r->running = 1;
    PyObject *res = ring_next(r);
    r->running = 0;
    if (r->closing) {
        r->closing = 0;
        ring_drop_buffer(r);
    }
    return res;
}

static PyObject *Ring_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ring", "block_size", "blocks", "linktype", "block", NULL};
    PyObject *ring;
    Py_ssize_t block_size, blocks, block = 0;
    int linktype;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onni|n:RingWalker", kwlist, &ring,
                                     &block_size, &blocks, &linktype, &block))
        return NULL;
    /* block_status must be 4-byte aligned for the atomics: blocks of a multiple of 8 bytes
     * on an aligned buffer (the kernel's are whole pages). INT_MAX keeps offsets small. */
    if (block_size < BLOCK_DESC_LEN + FRAME_HDR_LEN || block_size % 8 != 0 ||
        block_size > INT_MAX - VLAN_TAG_LEN || blocks < 1 || block < 0 || block >= blocks) {
        PyErr_SetString(PyExc_ValueError, "RingWalker: bad block_size, blocks or block");
        return NULL;
    }
    RingObject *r = (RingObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    if (PyObject_GetBuffer(ring, &r->view, PyBUF_WRITABLE) < 0) {
        r->view.obj = NULL;
        Py_DECREF(r);
        return NULL;
    }
    if (r->view.len / block_size < blocks || (uintptr_t)r->view.buf % 8 != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "RingWalker: the ring is shorter than its blocks, or misaligned");
        Py_DECREF(r);
        return NULL;
    }
    r->scratch = PyMem_Malloc((size_t)block_size + VLAN_TAG_LEN);
    r->linktype_obj = PyLong_FromLong(linktype);
    if (r->scratch == NULL || r->linktype_obj == NULL) {
        if (r->scratch == NULL)
            PyErr_NoMemory();
        Py_DECREF(r);
        return NULL;
    }
    r->block_size = block_size;
    r->nblocks = blocks;
    r->block = block;
    r->linktype = linktype;
    return (PyObject *)r;
}

static PyObject *Ring_attach(RingObject *r, PyObject *args)
{
    LaneObject *lane;
    PyObject *tick;
    unsigned long long every;
    if (parse_attach(args, &lane, &tick, &every) < 0 || lane_refresh(lane) < 0)
        return NULL;
    Py_XSETREF(r->lane, (LaneObject *)Py_NewRef((PyObject *)lane));
    Py_XSETREF(r->tick, Py_XNewRef(tick));
    r->tick_every = every;
    r->attach_packets = r->lane_packets;
    r->attach_bytes = r->lane_bytes;
    Py_RETURN_NONE;
}

static PyObject *Ring_detach(RingObject *r, PyObject *Py_UNUSED(ignored))
{
    PyObject *res = Py_BuildValue("KK", r->lane_packets - r->attach_packets,
                                  r->lane_bytes - r->attach_bytes);
    if (res == NULL)
        return NULL;
    Py_CLEAR(r->lane);
    Py_CLEAR(r->tick);
    r->attach_packets = r->lane_packets;
    r->attach_bytes = r->lane_bytes;
    return res;
}

static PyObject *Ring_ready_blocks(RingObject *r, PyObject *Py_UNUSED(ignored))
{
    /* the current block counts while it is ours: it is still waiting to be finished */
    Py_ssize_t n = 0;
    if (r->view.obj != NULL) {
        while (n < r->nblocks && ring_ready(r, (r->block + n) % r->nblocks))
            n++;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *Ring_stop(RingObject *r, PyObject *Py_UNUSED(ignored))
{
    r->stopped = 1;
    Py_RETURN_NONE;
}

static PyObject *Ring_close(RingObject *r, PyObject *Py_UNUSED(ignored))
{
    /* from inside next() (a tick): the buffer is in use until next() returns */
    if (r->running)
        r->closing = 1;
    else
        ring_drop_buffer(r);
    Py_RETURN_NONE;
}

static int Ring_traverse(RingObject *r, visitproc visit, void *arg)
{
    Py_VISIT(r->view.obj);
    Py_VISIT(r->linktype_obj);
    Py_VISIT(r->lane);
    Py_VISIT(r->tick);
    return 0;
}

static int Ring_clear(RingObject *r)
{
    ring_drop_buffer(r);
    Py_CLEAR(r->linktype_obj);
    Py_CLEAR(r->lane);
    Py_CLEAR(r->tick);
    return 0;
}

static void Ring_dealloc(RingObject *r)
{
    PyObject_GC_UnTrack(r);
    Ring_clear(r);
    PyMem_Free(r->scratch);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyMethodDef Ring_methods[] = {
    {"attach", (PyCFunction)Ring_attach, METH_VARARGS,
     PyDoc_STR("attach(lane, tick, every): run `lane` on Ethernet frames and yield only the "
               "frames it does not handle; call tick() every `every` frames")},
    {"detach", (PyCFunction)Ring_detach, METH_NOARGS,
     PyDoc_STR("detach() -> (packets, bytes) the lane handled since attach(); removes it")},
    {"ready_blocks", (PyCFunction)Ring_ready_blocks, METH_NOARGS,
     PyDoc_STR("ready_blocks() -> blocks from the current one on that are ready and waiting")},
    {"stop", (PyCFunction)Ring_stop, METH_NOARGS,
     PyDoc_STR("stop(): finish the current block, then take no further block")},
    {"close", (PyCFunction)Ring_close, METH_NOARGS,
     PyDoc_STR("close(): release the ring's buffer (so its mmap can close); iteration ends")},
    {NULL, NULL, 0, NULL},
};

#define RING_COUNTER(name, doc) \
    {#name, Py_T_ULONGLONG, offsetof(RingObject, name), Py_READONLY, PyDoc_STR(doc)}
static PyMemberDef Ring_members[] = {
    RING_COUNTER(frames, "frames handed on (yielded or counted by the lane)"),
    RING_COUNTER(bytes, "their wire bytes, with the 4 of each 802.1Q tag put back"),
    RING_COUNTER(vlan_restored, "frames whose stripped 802.1Q tag was put back"),
    RING_COUNTER(lane_packets, "frames the lane counted (since the walker was made)"),
    RING_COUNTER(lane_bytes, "their wire bytes"),
    RING_COUNTER(bad_frames, "frames outside their block: each ended its block"),
    {"block", Py_T_PYSSIZET, offsetof(RingObject, block), Py_READONLY,
     PyDoc_STR("the block being read, or the next one waited for")},
    {"blocks", Py_T_PYSSIZET, offsetof(RingObject, nblocks), Py_READONLY,
     PyDoc_STR("blocks in the ring")},
    {NULL, 0, 0, 0, NULL},
};
#undef RING_COUNTER

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agent._fastcore.RingWalker",
    .tp_doc = PyDoc_STR("RingWalker(ring, block_size, blocks, linktype, block=0): the frames "
                        "of a TPACKET_V3 ring as (ts, linktype, data, wirelen)"),
    .tp_basicsize = sizeof(RingObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Ring_new,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_traverse = (traverseproc)Ring_traverse,
    .tp_clear = (inquiry)Ring_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Ring_next,
    .tp_methods = Ring_methods,
    .tp_members = Ring_members,
};

/* ---------------------------------------------------------------------------------------
 * module
 * ------------------------------------------------------------------------------------- */

static struct PyModuleDef fastcore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "agent._fastcore",
    .m_doc = "C hot path of medtap: pcap record walker, TPACKET_V3 ring walker and fast lane "
             "(see agent/fastcore.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastcore(void)
{
    if (PyType_Ready(&LaneType) < 0 || PyType_Ready(&WalkerType) < 0 ||
        PyType_Ready(&RingType) < 0)
        return NULL;
    if (str_next_sweep == NULL && (str_next_sweep = PyUnicode_InternFromString("_next_sweep")) == NULL)
        return NULL;
    if (str_flows == NULL && (str_flows = PyUnicode_InternFromString("_flows")) == NULL)
        return NULL;
    if (str_idle_timeout == NULL &&
        (str_idle_timeout = PyUnicode_InternFromString("_idle_timeout")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&fastcore_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddType(m, &LaneType) < 0 || PyModule_AddType(m, &WalkerType) < 0 ||
        PyModule_AddType(m, &RingType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
