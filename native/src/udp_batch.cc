#include "udp_batch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace ember {

constexpr int kTtl = 64;
// UDP_MAX_SEGMENTS in the kernel, and a GSO send's payload must fit one 64 KiB IP packet.
constexpr int kMaxSegments = 64;
constexpr size_t kMaxGsoBytes = 65000;

bool Endpoint::Same(const Endpoint& o) const { return len == o.len && memcmp(&addr, &o.addr, len) == 0; }

int SocketFamily(int fd) {
  sockaddr_storage ss{};
  socklen_t l = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &l) < 0) return -1;
  return ss.ss_family;
}

bool EnableGro(int fd) {
  int one = 1;
  return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
}

void GrowBuffers(int fd) {
  int want = 4 << 20;
  for (int opt : {SO_RCVBUF, SO_SNDBUF}) {
    int cur = 0;
    socklen_t l = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, opt, &cur, &l) == 0 && cur >= want) continue;  // the daemon chose more
    int force = opt == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
    if (setsockopt(fd, SOL_SOCKET, force, &want, sizeof want) != 0) setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want);
  }
}

void DisableGro(int fd) {
  int zero = 0;
  setsockopt(fd, SOL_UDP, UDP_GRO, &zero, sizeof zero);
}

bool MakeEndpoint(int family, const char* host, int port, Endpoint* out) {
  *out = Endpoint{};
  in_addr a4{};
  in6_addr a6{};
  bool v4 = inet_pton(AF_INET, host, &a4) == 1;
  bool v6 = !v4 && inet_pton(AF_INET6, host, &a6) == 1;
  if (!v4 && !v6) return false;
  if (family == AF_INET) {
    if (!v4) return false;
    auto* s = reinterpret_cast<sockaddr_in*>(&out->addr);
    s->sin_family = AF_INET;
    s->sin_port = htons(static_cast<uint16_t>(port));
    s->sin_addr = a4;
    out->len = sizeof(sockaddr_in);
    return true;
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(&out->addr);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(static_cast<uint16_t>(port));
  if (v4) {
    s->sin6_addr.s6_addr[10] = s->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s->sin6_addr.s6_addr[12], &a4, 4);
  } else {
    s->sin6_addr = a6;
  }
  out->len = sizeof(sockaddr_in6);
  return true;
}

void EndpointText(const sockaddr_storage& a, char* host, size_t hostLen, int* port) {
  host[0] = 0;
  *port = 0;
  if (a.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &s->sin_addr, host, hostLen);
    *port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], host, hostLen);
    else inet_ntop(AF_INET6, &s->sin6_addr, host, hostLen);
    *port = ntohs(s->sin6_port);
  }
}

static constexpr size_t kCtrl = CMSG_SPACE(sizeof(int)) + 64;

UdpReceiver::UdpReceiver(size_t bufSize)
    : bufSize_(bufSize), bufs_(new uint8_t[bufSize * kBatch]), ctrl_(kCtrl * kBatch) {}

int UdpReceiver::Recv(int fd) {
  for (int i = 0; i < kBatch; i++) {
    iovs_[i] = {Data(i), bufSize_};
    msghdr& h = msgs_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &addrs_[i];
    h.msg_namelen = sizeof addrs_[i];
    h.msg_iov = &iovs_[i];
    h.msg_iovlen = 1;
    h.msg_control = ctrl_.data() + i * kCtrl;
    h.msg_controllen = kCtrl;
    msgs_[i].msg_len = 0;
  }
  int n = recvmmsg(fd, msgs_, kBatch, MSG_DONTWAIT, nullptr);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
  return n;
}

int UdpReceiver::GroSize(int i) const {
  const msghdr& h = msgs_[i].msg_hdr;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v;
    }
  }
  return 0;
}

UdpSender::UdpSender(int fd, bool tryGso, bool wait) : fd_(fd), family_(SocketFamily(fd)), gso_(tryGso), wait_(wait) {}

bool UdpSender::WaitWritable() {
  if (!wait_) return false;
  pollfd p{fd_, POLLOUT, 0};
  return poll(&p, 1, 100) > 0;  // bounded: a wedged socket drops after 100 ms rather than stalling TUN reads
}

// TTL (IPv4) or hop limit (IPv6) for every native send.
static size_t PutTtl(int family, uint8_t* buf) {
  cmsghdr* c = reinterpret_cast<cmsghdr*>(buf);
  c->cmsg_len = CMSG_LEN(sizeof(int));
  c->cmsg_level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  c->cmsg_type = family == AF_INET6 ? IPV6_HOPLIMIT : IP_TTL;
  int ttl = kTtl;
  memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
  return CMSG_SPACE(sizeof(int));
}

bool UdpSender::SendGso(const OutPacket* p, int n, size_t segSize, SendCounters& c) {
  iovec iov[kMaxSegments];
  for (int i = 0; i < n; i++) iov[i] = {const_cast<uint8_t*>(p[i].data), p[i].len};
  alignas(cmsghdr) uint8_t ctrl[2 * CMSG_SPACE(sizeof(int))] = {};
  size_t off = PutTtl(family_, ctrl);
  cmsghdr* g = reinterpret_cast<cmsghdr*>(ctrl + off);
  g->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  g->cmsg_level = SOL_UDP;
  g->cmsg_type = UDP_SEGMENT;
  uint16_t seg = static_cast<uint16_t>(segSize);
  memcpy(CMSG_DATA(g), &seg, sizeof seg);
  off += CMSG_SPACE(sizeof(uint16_t));
  msghdr h{};
  h.msg_name = const_cast<sockaddr_storage*>(&p[0].to->addr);
  h.msg_namelen = p[0].to->len;
  h.msg_iov = iov;
  h.msg_iovlen = n;
  h.msg_control = ctrl;
  h.msg_controllen = off;
  for (int tries = 0; tries < 50; tries++) {
    ssize_t r = sendmsg(fd_, &h, 0);
    if (r >= 0) {
      c.calls++;
      c.gsoCalls++;
      c.packets += n;
      return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      if (!WaitWritable()) break;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP) {
      gso_ = false;  // the path (device, kernel) refuses segmentation offload: sendmmsg from now on
      return false;
    }
    break;
  }
  c.failed += n;
  return true;
}

void UdpSender::SendMmsg(const OutPacket* p, int n, SendCounters& c) {
  mmsghdr m[kBatch];
  iovec iov[kBatch];
  alignas(cmsghdr) uint8_t ctrl[kBatch][CMSG_SPACE(sizeof(int))];
  for (int i = 0; i < n; i++) {
    iov[i] = {const_cast<uint8_t*>(p[i].data), p[i].len};
    msghdr& h = m[i].msg_hdr;
    h = msghdr{};
    h.msg_name = const_cast<sockaddr_storage*>(&p[i].to->addr);
    h.msg_namelen = p[i].to->len;
    h.msg_iov = &iov[i];
    h.msg_iovlen = 1;
    memset(ctrl[i], 0, sizeof ctrl[i]);
    h.msg_control = ctrl[i];
    h.msg_controllen = PutTtl(family_, ctrl[i]);
    m[i].msg_len = 0;
  }
  int done = 0, waits = 0;
  while (done < n) {
    int r = sendmmsg(fd_, m + done, n - done, 0);
    c.calls++;
    if (r > 0) {
      done += r;
      c.packets += r;
      continue;
    }
    bool full = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS);
    if (full && waits++ < 50 && WaitWritable()) continue;
    if (full && !wait_) {  // no room and not allowed to wait: the rest of the run is dropped, not retried one by one
      c.failed += n - done;
      break;
    }
    if (r < 0 && errno == EINTR) continue;
    // This one datagram fails (unreachable, bad address): skip it, send the rest.
    c.failed++;
    done++;
  }
}

void UdpSender::Send(const std::vector<OutPacket>& pkts, SendCounters& c) {
  int n = static_cast<int>(pkts.size());
  int i = 0;
  while (i < n) {
    if (gso_) {
      // A GSO group: same endpoint, equal sizes, the last one may be shorter.
      size_t seg = pkts[i].len, total = seg;
      int j = i + 1;
      while (j < n && j - i < kMaxSegments && pkts[j].to->Same(*pkts[i].to) && pkts[j].len <= seg &&
             total + pkts[j].len <= kMaxGsoBytes) {
        total += pkts[j].len;
        bool last = pkts[j].len < seg;
        j++;
        if (last) break;
      }
      if (j - i > 1) {
        if (SendGso(&pkts[i], j - i, seg, c)) {
          i = j;
          continue;
        }
        // GSO just turned off: fall through to sendmmsg for this run
      }
    }
    // Without GSO (or a lone packet): sendmmsg of up to kBatch packets until the next GSO-able run.
    int j = i + 1;
    if (!gso_) j = std::min(n, i + kBatch);
    SendMmsg(&pkts[i], j - i, c);
    i = j;
  }
}

}  // namespace ember
