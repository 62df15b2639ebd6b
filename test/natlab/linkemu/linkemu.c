/*
 * linkemu: the NAT lab's link emulator (this kernel has no netem and no nft queue).
 *
 * Forwards Ethernet frames between two TAP devices (the TUN driver in Ethernet mode) that sit in two
 * bridges of a "link" namespace, one towards a router's WAN, one towards the core. Each direction has
 * its own impairments, applied to IPv4 and IPv6 frames; other frames (ARP) pass at once:
 *
 *   arrival -> outage? drop -> random loss? drop -> rate limiter (bounded FIFO, drop-tail)
 *           -> one-way delay (+ uniform jitter, base delay re-drawn every step) -> outage? drop -> deliver
 *
 * The rate limiter is a virtual serializer: a frame leaves it at max(now, link free) + bits / rate, and
 * the bytes still waiting ((link free - now) * rate) are the queue; a frame that would push it past the
 * limit is dropped. Delivery keeps order unless reordering is asked for: a frame never leaves before
 * the one ahead of it, as on real links.
 *
 * Usage: linkemu --a TAP --b TAP [--seed N] [--outage-every MS --outage MS] DIRSPEC DIRSPEC
 *   DIRSPEC: --ab KEY=VAL,... (frames read from a, written to b) and --ba KEY=VAL,...
 *   keys: delay=MS delaymax=MS delaystep=MS jitter=MS loss=PERCENT rate=KBIT queue=BYTES reorder=0|1
 * Prints {"ready":true} once both devices are open; answers each stdin line "stats" with one JSON line
 * of counters; exits on stdin EOF or SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 65600
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define BATCH 64 /* frames read from one device before looking at timers again */

typedef struct {
  double delay_ms, delay_max_ms, delay_step_ms, jitter_ms, loss_pct;
  double rate_kbit; /* 0: unlimited */
  long queue_bytes; /* rate limiter backlog limit */
  int reorder;
} dir_conf;

typedef struct {
  int64_t at_ns;
  uint64_t seq;
  uint32_t len;
  uint8_t *data;
} pending;

typedef struct {
  pending *heap;
  size_t n, cap;
} pqueue;

typedef struct {
  const char *name;
  dir_conf c;
  int in_fd, out_fd;
  pqueue q;
  int64_t link_free_ns; /* when the virtual serializer is idle again */
  int64_t last_deliver_ns; /* delivery time of the last frame accepted (order keeping) */
  double base_delay_ms;
  int64_t next_step_ns;
  uint64_t seq;
  /* counters */
  uint64_t rx, rx_bytes, passed_other, lost, outage_drops, queue_drops, delivered, delivered_bytes, write_errors;
  uint64_t max_queue_bytes;
  /* timing accuracy: how late frames left against their due time */
  uint64_t late_over_1ms;
  int64_t late_max_ns;
} direction;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static int64_t t_start_ns;
static double outage_every_ms = 0, outage_ms = 0;
static volatile sig_atomic_t stop_requested = 0;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64*: reproducible with --seed, good enough for loss and jitter draws. */
static double rnd01(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int in_outage(int64_t t_ns) {
  if (outage_every_ms <= 0 || outage_ms <= 0) return 0;
  double since = (double)(t_ns - t_start_ns) / 1e6;
  double phase = since - outage_every_ms * (double)(int64_t)(since / outage_every_ms);
  /* The first outage begins one full period after start, so a test sets up in calm. */
  return since >= outage_every_ms && phase < outage_ms;
}

static void die(const char *what) {
  fprintf(stderr, "linkemu: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(const char *msg) {
  fprintf(stderr, "linkemu: %s (usage: linkemu --a TAP --b TAP --ab K=V,... --ba K=V,... "
                  "[--seed N] [--outage-every MS --outage MS])\n", msg);
  exit(2);
}

/* ---- pending-frame min-heap by (at_ns, seq) ---- */

static int before(const pending *x, const pending *y) {
  return x->at_ns < y->at_ns || (x->at_ns == y->at_ns && x->seq < y->seq);
}

static void pq_push(pqueue *q, pending p) {
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 1024;
    q->heap = realloc(q->heap, q->cap * sizeof(pending));
    if (!q->heap) die("realloc");
  }
  size_t i = q->n++;
  q->heap[i] = p;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(&q->heap[i], &q->heap[parent])) break;
    pending t = q->heap[i]; q->heap[i] = q->heap[parent]; q->heap[parent] = t;
    i = parent;
  }
}

static pending pq_pop(pqueue *q) {
  pending top = q->heap[0];
  q->heap[0] = q->heap[--q->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < q->n && before(&q->heap[l], &q->heap[m])) m = l;
    if (r < q->n && before(&q->heap[r], &q->heap[m])) m = r;
    if (m == i) break;
    pending t = q->heap[i]; q->heap[i] = q->heap[m]; q->heap[m] = t;
    i = m;
  }
  return top;
}

/* ---- configuration ---- */

static void parse_dir(dir_conf *c, char *spec) {
  for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (!eq) usage("direction option without '='");
    *eq = 0;
    char *end;
    double v = strtod(eq + 1, &end);
    if (*end || v < 0) usage("direction option needs a non-negative number");
    if (!strcmp(tok, "delay")) c->delay_ms = v;
    else if (!strcmp(tok, "delaymax")) c->delay_max_ms = v;
    else if (!strcmp(tok, "delaystep")) c->delay_step_ms = v;
    else if (!strcmp(tok, "jitter")) c->jitter_ms = v;
    else if (!strcmp(tok, "loss")) c->loss_pct = v;
    else if (!strcmp(tok, "rate")) c->rate_kbit = v;
    else if (!strcmp(tok, "queue")) c->queue_bytes = (long)v;
    else if (!strcmp(tok, "reorder")) c->reorder = v != 0;
    else usage("unknown direction option");
  }
  if (c->loss_pct > 100) usage("loss is a percentage 0..100");
  if (c->delay_max_ms && c->delay_max_ms < c->delay_ms) usage("delaymax below delay");
}

static int open_tap(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (strlen(name) >= IFNAMSIZ) usage("device name too long");
  strcpy(ifr.ifr_name, name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die(name);
  return fd;
}

/* ---- the data path ---- */

static void redraw_delay(direction *d, int64_t now) {
  if (d->c.delay_max_ms <= d->c.delay_ms) { d->base_delay_ms = d->c.delay_ms; return; }
  if (d->c.delay_step_ms <= 0 || now < d->next_step_ns) return;
  d->base_delay_ms = d->c.delay_ms + rnd01() * (d->c.delay_max_ms - d->c.delay_ms);
  d->next_step_ns = now + (int64_t)(d->c.delay_step_ms * 1e6);
}

static int is_ip(const uint8_t *f, ssize_t len) {
  if (len < 14) return 0;
  unsigned type = (unsigned)f[12] << 8 | f[13];
  return type == ETHERTYPE_IPV4 || type == ETHERTYPE_IPV6;
}

static void accept_frame(direction *d, uint8_t *buf, ssize_t len, int64_t now) {
  d->rx++;
  d->rx_bytes += (uint64_t)len;
  int64_t at = now;
  if (is_ip(buf, len)) {
    if (in_outage(now)) { d->outage_drops++; return; }
    if (d->c.loss_pct > 0 && rnd01() * 100.0 < d->c.loss_pct) { d->lost++; return; }
    if (d->c.rate_kbit > 0) {
      int64_t free_at = d->link_free_ns > now ? d->link_free_ns : now;
      double backlog = (double)(free_at - now) / 1e9 * d->c.rate_kbit * 125.0;
      if (d->c.queue_bytes > 0 && backlog + (double)len > (double)d->c.queue_bytes) { d->queue_drops++; return; }
      if ((uint64_t)backlog > d->max_queue_bytes) d->max_queue_bytes = (uint64_t)backlog;
      d->link_free_ns = free_at + (int64_t)((double)len * 8.0 / d->c.rate_kbit * 1e6);
      at = d->link_free_ns;
    }
    redraw_delay(d, now);
    double delay = d->base_delay_ms;
    if (d->c.jitter_ms > 0) delay += (rnd01() * 2.0 - 1.0) * d->c.jitter_ms;
    if (delay < 0) delay = 0;
    at += (int64_t)(delay * 1e6);
    if (!d->c.reorder && at < d->last_deliver_ns) at = d->last_deliver_ns;
    d->last_deliver_ns = at;
  } else {
    d->passed_other++;
  }
  uint8_t *copy = malloc((size_t)len);
  if (!copy) die("malloc");
  memcpy(copy, buf, (size_t)len);
  pq_push(&d->q, (pending){ .at_ns = at, .seq = d->seq++, .len = (uint32_t)len, .data = copy });
}

static void read_side(direction *d, uint8_t *buf) {
  for (int i = 0; i < BATCH; i++) {
    ssize_t n = read(d->in_fd, buf, MAX_FRAME);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("read");
    }
    accept_frame(d, buf, n, now_ns());
  }
}

static void deliver_due(direction *d, int64_t now) {
  while (d->q.n && d->q.heap[0].at_ns <= now) {
    pending p = pq_pop(&d->q);
    int64_t late = now - p.at_ns;
    if (late > d->late_max_ns) d->late_max_ns = late;
    if (late > 1000000) d->late_over_1ms++;
    if (is_ip(p.data, p.len) && in_outage(p.at_ns)) {
      d->outage_drops++;
    } else if (write(d->out_fd, p.data, p.len) == (ssize_t)p.len) {
      d->delivered++;
      d->delivered_bytes += p.len;
    } else {
      d->write_errors++;
    }
    free(p.data);
  }
}

static void print_dir(const direction *d) {
  printf("\"%s\":{\"rx\":%llu,\"rxBytes\":%llu,\"other\":%llu,\"lost\":%llu,\"outageDrops\":%llu,"
         "\"queueDrops\":%llu,\"delivered\":%llu,\"deliveredBytes\":%llu,\"writeErrors\":%llu,"
         "\"maxQueueBytes\":%llu,\"inFlight\":%zu,\"lateOver1ms\":%llu,\"lateMaxUs\":%lld}",
         d->name, (unsigned long long)d->rx, (unsigned long long)d->rx_bytes,
         (unsigned long long)d->passed_other, (unsigned long long)d->lost,
         (unsigned long long)d->outage_drops, (unsigned long long)d->queue_drops,
         (unsigned long long)d->delivered, (unsigned long long)d->delivered_bytes,
         (unsigned long long)d->write_errors, (unsigned long long)d->max_queue_bytes, d->q.n,
         (unsigned long long)d->late_over_1ms, (long long)(d->late_max_ns / 1000));
}

static void print_stats(direction *ab, direction *ba) {
  int64_t now = now_ns();
  double since = (double)(now - t_start_ns) / 1e6;
  long outages = outage_every_ms > 0 ? (long)(since / outage_every_ms) : 0;
  printf("{\"uptimeMs\":%.0f,\"outagesBegun\":%ld,\"inOutage\":%s,", since, outages, in_outage(now) ? "true" : "false");
  print_dir(ab);
  printf(",");
  print_dir(ba);
  printf("}\n");
  fflush(stdout);
}

/* Reads stdin commands; returns 0 on EOF. */
static int handle_stdin(direction *ab, direction *ba) {
  static char line[256];
  static size_t used = 0;
  ssize_t n = read(0, line + used, sizeof line - 1 - used);
  if (n == 0) return 0;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  used += (size_t)n;
  char *nl;
  while ((nl = memchr(line, '\n', used))) {
    *nl = 0;
    if (!strcmp(line, "stats")) print_stats(ab, ba);
    else fprintf(stderr, "linkemu: unknown command \"%s\" (expected \"stats\")\n", line);
    used -= (size_t)(nl + 1 - line);
    memmove(line, nl + 1, used);
  }
  if (used == sizeof line - 1) used = 0; /* an over-long line is dropped */
  return 1;
}

static void on_term(int sig) { (void)sig; stop_requested = 1; }

int main(int argc, char **argv) {
  const char *a_name = NULL, *b_name = NULL;
  direction ab = { .name = "ab" }, ba = { .name = "ba" };
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) usage("option without a value");
    char *v = argv[++i];
    if (!strcmp(k, "--a")) a_name = v;
    else if (!strcmp(k, "--b")) b_name = v;
    else if (!strcmp(k, "--ab")) parse_dir(&ab.c, v);
    else if (!strcmp(k, "--ba")) parse_dir(&ba.c, v);
    else if (!strcmp(k, "--seed")) rng_state = strtoull(v, NULL, 10) * 0x9e3779b97f4a7c15ULL | 1;
    else if (!strcmp(k, "--outage-every")) outage_every_ms = atof(v);
    else if (!strcmp(k, "--outage")) outage_ms = atof(v);
    else usage("unknown option");
  }
  if (!a_name || !b_name) usage("--a and --b name the two TAP devices");

  /*
   * Timer slack 1 us (default 50 us) and real-time priority: on a loaded 2-core host a normal process wakes
   * up to 10 ms late, which is the whole jitter budget of a link. SCHED_FIFO 1 is the lowest real-time
   * priority; the loop always blocks in ppoll, and the kernel's RT throttling caps it at 95% of a core.
   */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  struct sched_param sp = { .sched_priority = 1 };
  if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) setpriority(PRIO_PROCESS, 0, -10);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);

  ab.in_fd = ba.out_fd = open_tap(a_name);
  ba.in_fd = ab.out_fd = open_tap(b_name);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  t_start_ns = now_ns();
  ab.base_delay_ms = ab.c.delay_ms;
  ba.base_delay_ms = ba.c.delay_ms;
  redraw_delay(&ab, t_start_ns);
  redraw_delay(&ba, t_start_ns);
  printf("{\"ready\":true}\n");
  fflush(stdout);

  static uint8_t buf[MAX_FRAME];
  int stdin_open = 1;
  while (!stop_requested) {
    int64_t now = now_ns();
    deliver_due(&ab, now);
    deliver_due(&ba, now);
    int64_t next = INT64_MAX;
    if (ab.q.n) next = ab.q.heap[0].at_ns;
    if (ba.q.n && ba.q.heap[0].at_ns < next) next = ba.q.heap[0].at_ns;
    struct timespec ts, *tsp = NULL;
    if (next != INT64_MAX) {
      int64_t wait = next - now_ns();
      if (wait < 0) wait = 0;
      ts.tv_sec = wait / 1000000000LL;
      ts.tv_nsec = wait % 1000000000LL;
      tsp = &ts;
    }
    struct pollfd fds[3] = {
      { .fd = ab.in_fd, .events = POLLIN },
      { .fd = ba.in_fd, .events = POLLIN },
      { .fd = stdin_open ? 0 : -1, .events = POLLIN },
    };
    int r = ppoll(fds, 3, tsp, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    if (fds[0].revents & POLLIN) read_side(&ab, buf);
    if (fds[1].revents & POLLIN) read_side(&ba, buf);
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      if (!handle_stdin(&ab, &ba)) break; /* EOF: the lab let go of us */
    }
  }
  return 0;
}
