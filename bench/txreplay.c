/*
 * txreplay: replay a classic pcap file onto a network interface, fast.
 *
 *     txreplay [--pps RATE] [--count N] [--loop K] [--duration S] [--batch B]
 *              [--ring-frames N] [--frame-size BYTES] IFACE FILE
 *
 * Why not tcpreplay: it makes one sendto() per packet, which tops out at ~70-80k packets/s
 * on a small machine that also runs the sensor under test.  This program writes frames into
 * an AF_PACKET transmit ring (PACKET_TX_RING, TPACKET_V2) shared with the kernel and hands
 * a whole batch over with one send(); PACKET_QDISC_BYPASS skips the qdisc layer, so the
 * frames go straight to the driver (on a veth pair: straight to the peer's receive path).
 * See packet(7) and the kernel's Documentation/networking/packet_mmap.rst.
 *
 * Input: a classic pcap file (little- or big-endian, microsecond or nanosecond magic,
 * link type Ethernet), mmap'ed and checked completely before anything is sent.  pcapng,
 * gzip, other link types and malformed files (short header, truncated record, implausible
 * record length) are refused with one line on stderr and exit status 2.  The file's
 * timestamps are ignored: the rate is --pps (0 = as fast as possible).
 *
 * Options:
 *   --pps RATE        frames per second, 0 (default) = top speed.  A token bucket on
 *                     CLOCK_MONOTONIC releases frames in small bursts (one send() each, see
 *                     burst_size()), so the average over a second is exact while the
 *                     program sleeps between bursts instead of making a system call per frame.
 *   --count N         stop after N frames were handed to the kernel (skipped frames do not
 *                     count).  0 (default) = no limit.
 *   --loop K          play the file K times (default 1); 0 = forever (stop with --count,
 *                     --duration or SIGINT/SIGTERM).
 *   --duration S      stop after S seconds (fractions allowed).  0 (default) = no limit.
 *   --batch B         frames queued in the ring before one send() flushes them (default 64).
 *   --ring-frames N   slots in the TX ring (default: max(1024, 4 * batch)).
 *   --frame-size N    bytes per ring slot including the 32-byte TPACKET_V2 header (default:
 *                     fits the largest frame of the file that the interface accepts).
 *   -v, --verbose     ring geometry, send()/retry/sleep counts and CPU time on stderr.
 *
 * Frames the interface cannot take are skipped and counted, never truncated: longer than
 * MTU + 14 bytes of Ethernet header (+ 4 if 802.1Q-tagged, as the kernel allows), longer
 * than the ring slot, or shorter than an Ethernet header.
 *
 * Output: one JSON line on stdout at the end (also after SIGINT/SIGTERM):
 *   {"sent": n, "skipped": n, "errors": n, "seconds": s, "pps": r, "bytes": b}
 * sent/bytes count frames the driver accepted (read back from the ring's status words);
 * errors counts frames the kernel refused (TP_STATUS_WRONG_FORMAT) or that were still queued
 * when a fatal error stopped the run; seconds runs from the first frame to the last
 * completion; pps = sent / seconds.
 *
 * Exit status: 0 ok; 1 runtime error (no such interface, interface down, not root, send
 * failure); 2 bad usage or bad input file.
 *
 * Build: cc -O2 -Wall -Wextra -o txreplay txreplay.c   (libc and Linux headers only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

#define EXIT_RUNTIME 1
#define EXIT_INPUT 2

#define PCAP_HDR_LEN 24
#define PCAP_REC_LEN 16
#define PCAP_MAX_RECORD (256u * 1024u) /* libpcap's own upper bound for a record */
#define LINKTYPE_ETHERNET 1

/* A TPACKET_V2 TX slot: the frame's bytes start right after the aligned header (the kernel
 * reads them at tp_hdrlen - sizeof(struct sockaddr_ll) unless PACKET_TX_HAS_OFF is set). */
#define TX_DATA_OFFSET (TPACKET_ALIGN(sizeof(struct tpacket2_hdr)))

static const char *prog = "txreplay";
static volatile sig_atomic_t stop_requested;

/* ---- messages ------------------------------------------------------------------------- */

/* One line on stderr, then exit with `code`. */
static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr,
            "usage: %s [--pps RATE] [--count N] [--loop K] [--duration S] [--batch B]\n"
            "                [--ring-frames N] [--frame-size BYTES] IFACE FILE.pcap\n",
            prog);
    exit(EXIT_INPUT);
}

/* Strict non-negative number parsing: the whole string must be a number. */
static double parse_double(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e15)
        die(EXIT_INPUT, "%s: not a non-negative number: '%s'", opt, s);
    return v;
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    if (*s == '-')
        die(EXIT_INPUT, "%s: not a non-negative integer: '%s'", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        die(EXIT_INPUT, "%s: not a non-negative integer: '%s'", opt, s);
    return v;
}

/* ---- the pcap file -------------------------------------------------------------------- */

struct pcap {
    const char *name;
    const uint8_t *base; /* the whole file, mmap'ed read-only */
    size_t size;
    int swapped;         /* file written with the other byte order */
    uint64_t records;    /* number of records (all checked) */
    uint32_t max_caplen; /* longest record */
};

static uint32_t rd32(const struct pcap *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p->base + off, sizeof v); /* records are not aligned */
    return p->swapped ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const struct pcap *p, size_t off)
{
    uint16_t v;
    memcpy(&v, p->base + off, sizeof v);
    return p->swapped ? __builtin_bswap16(v) : v;
}

/* Map the file and check every record header, so that nothing malformed is found halfway
 * through a replay.  Any problem: one line on stderr, exit 2. */
static void pcap_open(struct pcap *p, const char *name)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(EXIT_INPUT, "%s: cannot open: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0)
        die(EXIT_INPUT, "%s: cannot stat: %s", name, strerror(errno));
    if (!S_ISREG(st.st_mode))
        die(EXIT_INPUT, "%s: not a regular file", name);
    if ((uint64_t)st.st_size < PCAP_HDR_LEN)
        die(EXIT_INPUT, "%s: not a pcap file (%lld bytes, shorter than the 24-byte header)",
            name, (long long)st.st_size);
    p->size = (size_t)st.st_size;
    /* MAP_POPULATE: fault the file in now rather than while sending. */
    void *m = mmap(NULL, p->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED)
        die(EXIT_INPUT, "%s: cannot mmap: %s", name, strerror(errno));
    close(fd);
    p->base = m;

    /* The magic number, read in host order, tells the byte order and the time unit (the
     * unit does not matter here: timestamps are not used). */
    uint32_t magic;
    memcpy(&magic, p->base, sizeof magic);
    switch (magic) {
    case 0xa1b2c3d4: /* microseconds, host order */
    case 0xa1b23c4d: /* nanoseconds, host order */
        break;
    case 0xd4c3b2a1: /* microseconds, swapped */
    case 0x4d3cb2a1: /* nanoseconds, swapped */
        p->swapped = 1;
        break;
    default:
        if (memcmp(p->base, "\x0a\x0d\x0d\x0a", 4) == 0)
            die(EXIT_INPUT, "%s: is pcapng, only classic pcap is supported "
                "(convert with: editcap -F pcap IN OUT)", name);
        if (memcmp(p->base, "\x1f\x8b", 2) == 0)
            die(EXIT_INPUT, "%s: is gzip-compressed, decompress it first", name);
        die(EXIT_INPUT, "%s: not a pcap file (magic %02x %02x %02x %02x)", name,
            p->base[0], p->base[1], p->base[2], p->base[3]);
    }
    uint16_t major = rd16(p, 4), minor = rd16(p, 6);
    if (major != 2)
        die(EXIT_INPUT, "%s: unsupported pcap version %u.%u", name, major, minor);
    uint32_t snaplen = rd32(p, 16);
    /* The low 16 bits are the link type; the upper bits may carry FCS information. */
    uint32_t linktype = rd32(p, 20) & 0xffff;
    if (linktype != LINKTYPE_ETHERNET)
        die(EXIT_INPUT, "%s: link type %u is not Ethernet (1); cannot replay it onto an "
            "Ethernet interface", name, linktype);
    uint32_t limit = snaplen > PCAP_MAX_RECORD ? snaplen : PCAP_MAX_RECORD;

    size_t off = PCAP_HDR_LEN;
    while (off < p->size) {
        if (p->size - off < PCAP_REC_LEN)
            die(EXIT_INPUT, "%s: truncated record header at offset %zu (record %llu)", name,
                off, (unsigned long long)p->records + 1);
        uint32_t caplen = rd32(p, off + 8);
        if (caplen > limit)
            die(EXIT_INPUT, "%s: record %llu at offset %zu: captured length %u is "
                "implausible (limit %u)", name, (unsigned long long)p->records + 1, off,
                caplen, limit);
        if (p->size - off - PCAP_REC_LEN < caplen)
            die(EXIT_INPUT, "%s: truncated record %llu at offset %zu: %u bytes announced, "
                "%zu left", name, (unsigned long long)p->records + 1, off, caplen,
                p->size - off - PCAP_REC_LEN);
        if (caplen > p->max_caplen)
            p->max_caplen = caplen;
        p->records++;
        off += PCAP_REC_LEN + caplen;
    }
    madvise((void *)p->base, p->size, MADV_SEQUENTIAL);
}

/* ---- the TX ring ---------------------------------------------------------------------- */

struct tx {
    int fd;
    uint8_t *ring;
    size_t ring_bytes;
    unsigned block_size, block_nr, frame_size, frame_nr, frames_per_block;
    unsigned head;        /* next slot to fill; the kernel consumes slots in the same order */
    unsigned last;        /* the slot filled most recently */
    int any_queued;
    uint32_t *slot_len;   /* length of the frame a slot holds, 0 = slot never used / reaped */
    unsigned since_flush; /* slots filled since the last send() */
    uint32_t mtu;
    /* results */
    uint64_t queued, sent, bytes, errors;
    int fatal_errno;
    /* diagnostics (--verbose) */
    uint64_t sends, retries, slot_waits;
};

static inline struct tpacket2_hdr *slot(const struct tx *t, unsigned i)
{
    return (struct tpacket2_hdr *)(t->ring + (size_t)(i / t->frames_per_block) * t->block_size
                                   + (size_t)(i % t->frames_per_block) * t->frame_size);
}

/* The status word is shared with the kernel: acquire on read, release on write, so the
 * frame bytes are visible before the kernel sees TP_STATUS_SEND_REQUEST. */
static inline uint32_t slot_status(const struct tx *t, unsigned i)
{
    return __atomic_load_n(&slot(t, i)->tp_status, __ATOMIC_ACQUIRE);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_requested)
        ;
}

static void nap(void)
{
    /* Let softirq processing / ksoftirqd (which drains the peer's backlog on a veth pair)
     * run: on a 2-core machine a busy-wait would compete with it. */
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

/* Open the socket and its ring on `ifname`.  frame_size 0: slots just large enough (as a
 * power of two, at least 2048 bytes) for the longest frame that is both in the file
 * (max_caplen) and accepted by the interface. */
static void tx_open(struct tx *t, const char *ifname, unsigned ring_frames, unsigned frame_size,
                    uint32_t max_caplen)
{
    unsigned ifindex = if_nametoindex(ifname);
    if (ifindex == 0)
        die(EXIT_RUNTIME, "%s: no such interface", ifname);

    /* SOCK_RAW: frames are sent as they are, Ethernet header included.  Protocol 0: this
     * socket receives nothing, so it costs nothing on the receive path. */
    t->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        if (errno == EPERM || errno == EACCES)
            die(EXIT_RUNTIME, "socket(AF_PACKET): %s: run as root (or with CAP_NET_RAW)",
                strerror(errno));
        die(EXIT_RUNTIME, "socket(AF_PACKET): %s", strerror(errno));
    }

    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(t->fd, SIOCGIFMTU, &ifr) < 0)
        die(EXIT_RUNTIME, "%s: cannot read the MTU: %s", ifname, strerror(errno));
    t->mtu = (uint32_t)ifr.ifr_mtu;
    if (ioctl(t->fd, SIOCGIFFLAGS, &ifr) < 0)
        die(EXIT_RUNTIME, "%s: cannot read the flags: %s", ifname, strerror(errno));
    if (!(ifr.ifr_flags & IFF_UP))
        die(EXIT_RUNTIME, "%s: interface is down", ifname);

    int v = TPACKET_V2;
    if (setsockopt(t->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0)
        die(EXIT_RUNTIME, "PACKET_VERSION TPACKET_V2: %s", strerror(errno));
    int one = 1;
    if (setsockopt(t->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
        fprintf(stderr, "%s: note: PACKET_QDISC_BYPASS unavailable (%s), sending through the "
                "qdisc\n", prog, strerror(errno));

    if (!frame_size) {
        uint32_t need = max_caplen;
        if (need > t->mtu + ETH_HLEN + 4)
            need = t->mtu + ETH_HLEN + 4;
        frame_size = 2048;
        while (frame_size < TX_DATA_OFFSET + need)
            frame_size <<= 1;
    }

    /* Geometry: a slot holds header + frame; blocks are page multiples holding whole slots
     * (the kernel requires frames_per_block * block_nr == frame_nr). */
    long page = sysconf(_SC_PAGESIZE);
    t->frame_size = TPACKET_ALIGN(frame_size);
    unsigned block = t->frame_size > (1u << 16) ? t->frame_size : (1u << 16);
    block = (unsigned)(((block + page - 1) / page) * page);
    t->block_size = block;
    t->frames_per_block = block / t->frame_size;
    t->block_nr = (ring_frames + t->frames_per_block - 1) / t->frames_per_block;
    t->frame_nr = t->block_nr * t->frames_per_block;
    struct tpacket_req req = {
        .tp_block_size = t->block_size,
        .tp_block_nr = t->block_nr,
        .tp_frame_size = t->frame_size,
        .tp_frame_nr = t->frame_nr,
    };
    if (setsockopt(t->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0)
        die(EXIT_RUNTIME, "PACKET_TX_RING (%u blocks of %u bytes, %u frames of %u): %s",
            t->block_nr, t->block_size, t->frame_nr, t->frame_size, strerror(errno));
    t->ring_bytes = (size_t)t->block_size * t->block_nr;
    t->ring = mmap(NULL, t->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    if (t->ring == MAP_FAILED)
        die(EXIT_RUNTIME, "mmap of the TX ring (%zu bytes): %s", t->ring_bytes, strerror(errno));

    /* Frames in flight are charged to the socket's send buffer; the default (~200 KB) would
     * stop the ring at a few hundred frames.  Room for the whole ring, twice. */
    int sndbuf = t->ring_bytes > (1u << 29) ? (1 << 30) : (int)(t->ring_bytes * 2);
    if (setsockopt(t->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
        setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = 0;
    sll.sll_ifindex = (int)ifindex;
    if (bind(t->fd, (struct sockaddr *)&sll, sizeof sll) < 0)
        die(EXIT_RUNTIME, "%s: bind: %s", ifname, strerror(errno));

    t->slot_len = calloc(t->frame_nr, sizeof *t->slot_len);
    if (!t->slot_len)
        die(EXIT_RUNTIME, "out of memory");
}

/* Account for a slot the kernel is done with (status AVAILABLE or WRONG_FORMAT). */
static void reap(struct tx *t, unsigned i, uint32_t status)
{
    if (!t->slot_len[i])
        return;
    if (status & TP_STATUS_WRONG_FORMAT) {
        t->errors++;
    } else {
        t->sent++;
        t->bytes += t->slot_len[i];
    }
    t->slot_len[i] = 0;
}

static int transient(int e)
{
    /* EAGAIN: send buffer full (frames still in flight).  ENOBUFS: the driver dropped the
     * frame (a veth peer's backlog is full); the kernel puts it back to SEND_REQUEST, so a
     * retry sends it again: backpressure, not loss. */
    return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == EINTR;
}

/* Hand every slot marked SEND_REQUEST to the kernel.  Returns 0, or -1 on a fatal error
 * (errno kept in t->fatal_errno). */
static int flush(struct tx *t)
{
    t->since_flush = 0;
    if (!t->any_queued)
        return 0;
    for (;;) {
        ssize_t r = send(t->fd, NULL, 0, MSG_DONTWAIT);
        t->sends++;
        int e = r < 0 ? errno : 0;
        /* The kernel takes slots in order: once the newest one has left SEND_REQUEST,
         * everything before it has been taken too. */
        uint32_t st = slot_status(t, t->last);
        if (st & TP_STATUS_WRONG_FORMAT) {
            /* Without PACKET_LOSS the kernel stops at a refused frame and would not move
             * past it; the size checks before queueing should make this impossible. */
            t->fatal_errno = e ? e : EINVAL;
            return -1;
        }
        if (st != TP_STATUS_SEND_REQUEST)
            return 0;
        if (r < 0 && !transient(e)) {
            t->fatal_errno = e;
            return -1;
        }
        if (stop_requested)
            return 0;
        t->retries++;
        nap();
    }
}

/* Wait until slot i may be written, accounting for the frame it held.  -1 on fatal error. */
static int acquire(struct tx *t, unsigned i)
{
    double deadline = 0;
    for (;;) {
        uint32_t st = slot_status(t, i);
        if (st == TP_STATUS_AVAILABLE || (st & TP_STATUS_WRONG_FORMAT)) {
            reap(t, i, st);
            return 0;
        }
        if (st == TP_STATUS_SEND_REQUEST) {
            if (flush(t) < 0)
                return -1;
            if (stop_requested)
                return -1;
            continue;
        }
        /* TP_STATUS_SENDING: the skb is still in flight (its destructor frees the slot). */
        if (!deadline) {
            deadline = now_s() + 5.0;
            t->slot_waits++;
        }
        else if (now_s() > deadline) {
            t->fatal_errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = t->fd, .events = POLLOUT};
        poll(&pfd, 1, 1);
        if (stop_requested)
            return -1;
    }
}

/* Copy one frame into the next slot and mark it for sending (not sent until flush()). */
static int enqueue(struct tx *t, const uint8_t *data, uint32_t len)
{
    unsigned i = t->head;
    if (acquire(t, i) < 0)
        return -1;
    struct tpacket2_hdr *h = slot(t, i);
    memcpy((uint8_t *)h + TX_DATA_OFFSET, data, len);
    h->tp_len = len;
    h->tp_snaplen = len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    t->slot_len[i] = len;
    t->last = i;
    t->any_queued = 1;
    t->head = (i + 1 == t->frame_nr) ? 0 : i + 1;
    t->queued++;
    t->since_flush++;
    return 0;
}

/* After the last flush: wait (up to 5 s) for every frame in flight, then count them all. */
static void drain(struct tx *t)
{
    double deadline = now_s() + 5.0;
    for (unsigned i = 0; i < t->frame_nr; i++) {
        if (!t->slot_len[i])
            continue;
        uint32_t st;
        while ((st = slot_status(t, i)) == TP_STATUS_SENDING && now_s() < deadline)
            nap();
        if (st == TP_STATUS_AVAILABLE || (st & TP_STATUS_WRONG_FORMAT))
            reap(t, i, st);
        else if (st == TP_STATUS_SEND_REQUEST && t->fatal_errno) {
            t->errors++; /* never sent because of the fatal error */
            t->slot_len[i] = 0;
        }
        /* else: still queued after a stop request, or still SENDING: not counted */
    }
}

/* Longest frame the interface accepts: MTU + Ethernet header, + 4 for an 802.1Q tag (the
 * kernel's packet_extra_vlan_len_allowed()). */
static inline uint32_t max_len_for(const struct tx *t, const uint8_t *frame, uint32_t len)
{
    uint32_t max = t->mtu + ETH_HLEN;
    if (len >= ETH_HLEN && frame[12] == 0x81 && frame[13] == 0x00)
        max += 4;
    return max;
}

/* ---- rate control --------------------------------------------------------------------- */

/* Frames released per wake-up at a given rate: about 2000 wake-ups per second at most, one
 * send() each, never more than a batch.  Small bursts keep the traffic smooth at the scale a
 * receiver's ring and backlog see it; the token bucket keeps the average exact. */
static unsigned burst_size(double pps, unsigned batch)
{
    double b = pps / 2000.0;
    if (b < 1)
        return 1;
    return b > batch ? batch : (unsigned)b;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    double pps = 0, duration = 0;
    uint64_t count = 0, loops = 1;
    uint64_t batch = 64, ring_frames = 0, frame_size_opt = 0;
    const char *ifname = NULL;
    int verbose = 0;

    static const struct option opts[] = {
        {"pps", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'c'},
        {"loop", required_argument, NULL, 'l'},
        {"duration", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {"ring-frames", required_argument, NULL, 'r'},
        {"frame-size", required_argument, NULL, 'f'},
        {"interface", required_argument, NULL, 'i'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "i:p:c:l:d:b:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pps = parse_double("--pps", optarg); break;
        case 'c': count = parse_u64("--count", optarg); break;
        case 'l': loops = parse_u64("--loop", optarg); break;
        case 'd': duration = parse_double("--duration", optarg); break;
        case 'b': batch = parse_u64("--batch", optarg); break;
        case 'r': ring_frames = parse_u64("--ring-frames", optarg); break;
        case 'f': frame_size_opt = parse_u64("--frame-size", optarg); break;
        case 'i': ifname = optarg; break;
        case 'v': verbose = 1; break;
        default: usage();
        }
    }
    int rest = argc - optind;
    if (ifname == NULL && rest == 2) {
        ifname = argv[optind];
        optind++;
    } else if (!(ifname != NULL && rest == 1)) {
        usage();
    }
    const char *file = argv[optind];
    if (batch < 1 || batch > 65536)
        die(EXIT_INPUT, "--batch: must be between 1 and 65536");
    if (ring_frames == 0)
        ring_frames = batch * 4 > 1024 ? batch * 4 : 1024;
    if (ring_frames < 2 * batch || ring_frames > (1u << 20))
        die(EXIT_INPUT, "--ring-frames: must be at least twice --batch and at most 1048576");
    if (frame_size_opt && (frame_size_opt < TX_DATA_OFFSET + ETH_HLEN
                           || frame_size_opt > (1u << 20)))
        die(EXIT_INPUT, "--frame-size: must be between %zu and 1048576",
            (size_t)(TX_DATA_OFFSET + ETH_HLEN));

    struct pcap pcap;
    pcap_open(&pcap, file);

    struct tx t;
    memset(&t, 0, sizeof t);
    tx_open(&t, ifname, (unsigned)ring_frames, (unsigned)frame_size_opt, pcap.max_caplen);
    uint32_t slot_max = t.frame_size - (uint32_t)TX_DATA_OFFSET;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* precise wake-ups for the token bucket */

    uint64_t skipped = 0;
    unsigned burst = pps > 0 ? burst_size(pps, (unsigned)batch) : (unsigned)batch;
    /* Token bucket: `tokens` frames may go now; it fills at `pps` per second and holds at
     * most `cap` (a backlog of 50 ms, at least a few batches), so a stall of the sender
     * (preemption on a busy machine) is made up within the second but does not turn into
     * one huge burst. */
    double tokens = 1, cap = pps * 0.05, lost = 0, late_max = 0;
    uint64_t sleeps = 0;
    if (cap < 4.0 * (double)batch)
        cap = 4.0 * (double)batch;

    size_t off = PCAP_HDR_LEN;
    uint64_t loops_done = 0, sendable_this_pass = 0;
    int done = pcap.records == 0, failed = 0;
    double start = now_s(), last = start, end_at = duration > 0 ? start + duration : 0;

    while (!done && !stop_requested) {
        /* How many frames may go in this round. */
        uint64_t allowed = batch;
        if (pps > 0) {
            double now = now_s();
            tokens += (now - last) * pps;
            last = now;
            if (tokens > cap) {
                lost += tokens - cap;
                tokens = cap;
            }
            uint64_t left = count ? count - t.queued : UINT64_MAX;
            double want = (double)(left < burst ? left : burst);
            if (tokens < want) {
                /* Hand over what is queued, then sleep until a burst is due. */
                if (t.since_flush && flush(&t) < 0) {
                    failed = 1;
                    break;
                }
                double wake = now + (want - tokens) / pps;
                if (end_at && wake > end_at)
                    wake = end_at;
                sleep_until(wake);
                sleeps++;
                if (now_s() - wake > late_max)
                    late_max = now_s() - wake;
                if (end_at && now_s() >= end_at)
                    break;
                continue;
            }
            allowed = (uint64_t)tokens;
            if (allowed > batch)
                allowed = batch;
        }
        if (end_at && now_s() >= end_at)
            break;

        uint64_t n = 0;
        while (n < allowed) {
            if (off >= pcap.size) {
                /* End of the file: another pass, or the end. */
                loops_done++;
                if ((loops && loops_done >= loops) || sendable_this_pass == 0) {
                    done = 1;
                    break;
                }
                off = PCAP_HDR_LEN;
                sendable_this_pass = 0;
            }
            uint32_t len = rd32(&pcap, off + 8);
            const uint8_t *data = pcap.base + off + PCAP_REC_LEN;
            off += PCAP_REC_LEN + len;
            if (len < ETH_HLEN || len > slot_max || len > max_len_for(&t, data, len)) {
                skipped++;
                continue;
            }
            sendable_this_pass++;
            if (enqueue(&t, data, len) < 0) {
                failed = t.fatal_errno != 0;
                done = 1;
                break;
            }
            n++;
            if (count && t.queued >= count) {
                done = 1;
                break;
            }
        }
        if (pps > 0)
            tokens -= (double)n;
        if (failed)
            break;
        if ((t.since_flush >= batch || done || pps > 0) && flush(&t) < 0) {
            failed = 1;
            break;
        }
    }
    if (!failed && flush(&t) < 0)
        failed = 1;
    drain(&t);
    double seconds = now_s() - start;

    printf("{\"sent\": %llu, \"skipped\": %llu, \"errors\": %llu, \"seconds\": %.6f, "
           "\"pps\": %.1f, \"bytes\": %llu}\n",
           (unsigned long long)t.sent, (unsigned long long)skipped,
           (unsigned long long)t.errors, seconds, seconds > 0 ? (double)t.sent / seconds : 0.0,
           (unsigned long long)t.bytes);
    fflush(stdout);
    if (verbose) {
        /* CPU time: on a veth pair "sys" includes the receive path the kernel runs on this
         * core (as softirq) for each frame, up to the copy into a capturing socket's ring. */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr, "%s: mtu %u, ring %u slots of %u bytes (%u blocks of %u), batch %llu, "
                "burst %u; %llu send() calls, %llu retries (EAGAIN/ENOBUFS), %llu waits for a "
                "slot in flight; %llu sleeps, latest wake-up %.3f ms late, %.0f frames of rate "
                "budget lost to stalls over %.0f ms; cpu %.2f s user + %.2f s sys in %.2f s, "
                "%ld involuntary context switches\n",
                prog, t.mtu, t.frame_nr, t.frame_size, t.block_nr, t.block_size,
                (unsigned long long)batch, burst, (unsigned long long)t.sends,
                (unsigned long long)t.retries, (unsigned long long)t.slot_waits,
                (unsigned long long)sleeps, late_max * 1e3, lost, pps > 0 ? cap / pps * 1e3 : 0,
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, seconds,
                ru.ru_nivcsw);
    }
    if (failed) {
        int e = t.fatal_errno;
        if (e == ETIMEDOUT)
            die(EXIT_RUNTIME, "%s: frames did not complete within 5 s", ifname);
        die(EXIT_RUNTIME, "%s: send failed: %s", ifname, strerror(e ? e : EIO));
    }
    return 0;
}
