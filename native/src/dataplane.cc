#include "dataplane.h"

#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "offload.h"

namespace ember {

const char* const kDropNames[kDropCount] = {
    "bad_tun_packet", "no_peer", "no_session", "replay", "auth_failed", "unknown_index", "spoofed_source",
    "firewall", "too_big", "bad_packet", "not_for_us", "fragment", "key_exhausted", "udp_send_failed",
    "tun_write_failed", "no_tun", "js_queue_full"};

constexpr uint8_t kTunData = 0x16;
constexpr size_t kHeader = 16;
constexpr size_t kMinPacket = kHeader + kTagSize;
constexpr size_t kMaxDatagram = 65535;  // what one UDP read can hold (with GRO, a coalesced train)
constexpr size_t kSlot = kHeader + 65535 + kTagSize;
constexpr int64_t kWantIntervalMs = 1000;
// Staged packets per peer, and how long they may wait: older ones would only confuse the application that
// has long since retried (TCP) or given up (ping -W).
constexpr size_t kStagedMax = 64;
constexpr int64_t kStagedMaxAgeMs = 5000;

int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000 + t.tv_nsec / 1000000;
}

static uint32_t Le32(const uint8_t* p) { return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24; }
static uint64_t Le64(const uint8_t* p) { return uint64_t{Le32(p)} | uint64_t{Le32(p + 4)} << 32; }
static void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
static void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

DataPlane::DataPlane(int udpFd, int udpFd6, int tunFd, uint32_t overlayIp, Sink* sink)
    : udpFd_(udpFd), udpFd6_(udpFd6), tunFd_(tunFd), family_(SocketFamily(udpFd)), overlayIp_(overlayIp), sink_(sink) {
  ifreq ifr{};
  vnet_ = tunFd >= 0 && ioctl(tunFd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_VNET_HDR);
}

DataPlane::~DataPlane() { Close(); }

int DataPlane::FamilyFor(const char* host) const {
  in6_addr a6{};
  if (udpFd6_ >= 0 && inet_pton(AF_INET6, host, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6)) return AF_INET6;
  return family_;
}

bool DataPlane::Start(std::string* err) {
  if (started_ || closed_) {
    *err = closed_ ? "the data plane is closed" : "the data plane already started";
    return false;
  }
  if (family_ != AF_INET && family_ != AF_INET6) {
    *err = "udpFd is not a UDP socket (getsockname failed)";
    return false;
  }
  if (udpFd6_ >= 0 && (family_ != AF_INET || SocketFamily(udpFd6_) != AF_INET6)) {
    *err = "udpFd6 must be an IPv6 socket beside an IPv4 udpFd";
    return false;
  }
  eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventFd_ < 0) {
    *err = std::string("eventfd: ") + strerror(errno);
    return false;
  }
  gro_ = EnableGro(udpFd_);
  // Default buffers (~208 KiB) overflow under a TCP burst through the tunnel: every loss is a retransmit.
  GrowBuffers(udpFd_);
  sender_ = std::make_unique<UdpSender>(udpFd_, true);
  if (udpFd6_ >= 0) {
    gro6_ = EnableGro(udpFd6_);
    GrowBuffers(udpFd6_);
    sender6_ = std::make_unique<UdpSender>(udpFd6_, true);
  }
  started_ = true;
  rx_ = std::thread([this] { RxLoop(); });
  if (tunFd_ >= 0) tx_ = std::thread([this] { TxLoop(); });
  return true;
}

void DataPlane::Close() {
  if (closed_) return;
  closed_ = true;
  if (started_) {
    uint64_t one = 1;
    (void)!write(eventFd_, &one, sizeof one);
    if (rx_.joinable()) rx_.join();
    if (tx_.joinable()) tx_.join();
    // The daemon reads the socket again after us: it must not get coalesced trains.
    if (gro_) DisableGro(udpFd_);
    if (gro6_) DisableGro(udpFd6_);
    close(eventFd_);
    eventFd_ = -1;
  }
  if (tunFd_ >= 0) close(tunFd_);
  tunFd_ = -1;
}

std::shared_lock<std::shared_mutex> DataPlane::ReadLock() {
  // glibc's rwlock prefers readers: two busy threads could starve setPeer/removePeer without this.
  while (writersWaiting_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  return std::shared_lock<std::shared_mutex>(tableMu_);
}

std::unique_lock<std::shared_mutex> DataPlane::WriteLock() {
  writersWaiting_.fetch_add(1, std::memory_order_acq_rel);
  std::unique_lock<std::shared_mutex> l(tableMu_);
  writersWaiting_.fetch_sub(1, std::memory_order_acq_rel);
  return l;
}

void DataPlane::SetPeer(uint32_t id, const PeerConfig& cfg) {
  uint32_t forget = 0;
  {
    auto l = WriteLock();
    auto it = peers_.find(id);
    std::shared_ptr<Peer> p;
    if (it == peers_.end()) {
      p = std::make_shared<Peer>();
      p->id = id;
      peers_[id] = p;
    } else {
      p = it->second;
      auto b = byIp_.find(p->cfg.overlayIp);
      if (b != byIp_.end() && b->second == p) byIp_.erase(b);
      forget = p->cfg.overlayIp;
    }
    p->cfg = cfg;
    byIp_[cfg.overlayIp] = p;
  }
  // Flows the peer opened under its old table are judged again under the new one.
  if (forget) conntrack_.ForgetInbound(forget);
}

void DataPlane::RemovePeer(uint32_t id) {
  uint32_t ip = 0;
  {
    auto l = WriteLock();
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    auto p = it->second;
    for (auto& k : p->keys) keys_.erase(k->localIndex);
    p->keys.clear();
    auto b = byIp_.find(p->cfg.overlayIp);
    if (b != byIp_.end() && b->second == p) byIp_.erase(b);
    ip = p->cfg.overlayIp;
    peers_.erase(it);
  }
  conntrack_.ForgetInbound(ip);
}

bool DataPlane::AddKeys(uint32_t peerId, uint32_t li, uint32_t ri, const uint8_t* sk, const uint8_t* rk, bool confirmed,
                        std::string* err) {
  auto kp = std::make_shared<Keypair>(peerId, li, ri, sk, rk);
  kp->confirmed.store(confirmed, std::memory_order_relaxed);
  if (!kp->send.ok() || !kp->recv.ok()) {
    *err = "OpenSSL refused the ChaCha20-Poly1305 key";
    return false;
  }
  auto l = WriteLock();
  auto it = peers_.find(peerId);
  if (it == peers_.end()) {
    *err = "addKeys: unknown peer " + std::to_string(peerId) + " (setPeer first)";
    return false;
  }
  auto old = keys_.find(li);
  if (old != keys_.end()) {  // an index is reused only after dropKeys; replace cleanly if not
    auto op = peers_.find(old->second->peerId);
    if (op != peers_.end()) {
      auto& v = op->second->keys;
      for (size_t i = 0; i < v.size(); i++)
        if (v[i]->localIndex == li) {
          v.erase(v.begin() + i);
          break;
        }
    }
  }
  keys_[li] = kp;
  it->second->keys.push_back(kp);
  // What waited for this session leaves now, through the tx stage on this (the JS) thread.
  std::vector<std::vector<uint8_t>> waiting;
  Peer& peer = *it->second;
  {
    std::lock_guard<std::mutex> g(peer.stagedMu);
    if (!peer.staged.empty() && NowMs() - peer.stagedSinceMs <= kStagedMaxAgeMs) waiting.swap(peer.staged);
    peer.staged.clear();
  }
  l.unlock();
  if (!waiting.empty()) {
    std::vector<std::pair<const uint8_t*, size_t>> pkts;
    for (auto& w : waiting) pkts.emplace_back(w.data(), w.size());
    staged_.fetch_add(pkts.size(), std::memory_order_relaxed);
    InjectTx(pkts);
  }
  return true;
}

bool DataPlane::Stage(Peer& peer, const uint8_t* pkt, size_t len, int64_t now) {
  std::lock_guard<std::mutex> g(peer.stagedMu);
  if (!peer.staged.empty() && now - peer.stagedSinceMs > kStagedMaxAgeMs) peer.staged.clear();
  if (peer.staged.size() >= kStagedMax) return false;
  if (peer.staged.empty()) peer.stagedSinceMs = now;
  peer.staged.emplace_back(pkt, pkt + len);
  return true;
}

void DataPlane::ConfirmKeys(uint32_t li) {
  auto l = ReadLock();
  auto it = keys_.find(li);
  if (it != keys_.end()) it->second->confirmed.store(true, std::memory_order_relaxed);
}

// The keys a packet to this peer is sealed with: the newest, unless they are an initiator's keys the peer has
// not confirmed yet and the previous ones still send (a rekey's data must not overtake its final message).
static Keypair& SendingKeys(Peer& peer) {
  auto& v = peer.keys;
  Keypair& newest = *v.back();
  if (newest.confirmed.load(std::memory_order_relaxed) || v.size() < 2) return newest;
  Keypair& previous = *v[v.size() - 2];
  bool usable = previous.confirmed.load(std::memory_order_relaxed) &&
                previous.sendCounter.load(std::memory_order_relaxed) < kRejectAfterMessages;
  return usable ? previous : newest;
}

void DataPlane::DropKeys(uint32_t li) {
  auto l = WriteLock();
  auto it = keys_.find(li);
  if (it == keys_.end()) return;
  auto p = peers_.find(it->second->peerId);
  if (p != peers_.end()) {
    auto& v = p->second->keys;
    for (size_t i = 0; i < v.size(); i++)
      if (v[i].get() == it->second.get()) {
        v.erase(v.begin() + i);
        break;
      }
  }
  keys_.erase(it);
}

// One TUN_DATA packet, decrypted in place (p[16..]). Called with the table lock held shared.
void DataPlane::ProcessTunData(uint8_t* p, size_t len, int64_t now, RxOut& out) {
  if (len < kMinPacket) {
    Count(kBadPacket);
    return;
  }
  auto k = keys_.find(Le32(p + 4));
  if (k == keys_.end()) {
    Count(kUnknownIndex);
    return;
  }
  Keypair& kp = *k->second;
  auto pi = peers_.find(kp.peerId);
  if (pi == peers_.end()) {
    Count(kUnknownIndex);
    return;
  }
  Peer& peer = *pi->second;
  uint64_t counter = Le64(p + 8);
  uint8_t* body = p + kHeader;
  size_t plen = len - kMinPacket;
  {
    std::lock_guard<std::mutex> g(kp.rxMu);
    if (!kp.window.Check(counter)) {
      Count(kReplay);
      return;
    }
    if (!kp.recv.Open(counter, body, plen, body)) {
      Count(kAuthFailed);
      return;
    }
    kp.window.Update(counter);
  }
  kp.confirmed.store(true, std::memory_order_relaxed);
  // Authenticated: the peer is alive even if the packet inside is refused below.
  peer.lastRxMs.store(now, std::memory_order_relaxed);
  PacketInfo info;
  if (!ParseIpv4(body, plen, &info)) {
    Count(kBadPacket);
    return;
  }
  if (info.src != peer.cfg.overlayIp) {
    Count(kSpoofedSource);
    return;
  }
  if (overlayIp_ && info.dst != overlayIp_) {
    Count(kNotForUs);
    return;
  }
  FlowKey key;
  Verdict v = conntrack_.Inbound(info, peer.cfg.inbound, now, &key);
  if (v == Verdict::kFragment) {
    Count(kFragment);
    return;
  }
  if (v == Verdict::kDeny) {
    Count(kFirewall);
    if (conntrack_.ReportDenied(key, now)) {
      if (!out.denied) out.denied = std::make_unique<std::vector<DeniedFlow>>();
      bool icmp = info.proto == kIcmp;
      out.denied->push_back({peer.id, info.proto, info.src, info.dst, icmp ? uint16_t{0} : info.sport,
                             icmp ? uint16_t{0} : info.dport});
    }
    return;
  }
  size_t ipLen = (size_t{body[2]} << 8) | body[3];  // total length: drop any padding after the IP packet
  peer.rxPackets.fetch_add(1, std::memory_order_relaxed);
  peer.rxBytes.fetch_add(ipLen, std::memory_order_relaxed);
  out.tun.push_back({body, ipLen});
}

void DataPlane::WriteTun(const uint8_t* p, size_t len) {
  if (tunFd_ < 0) {
    Count(kNoTun);
    return;
  }
  static const uint8_t kNoOffload[kVnetHdrSize] = {};  // a whole packet, checksums done: nothing for the kernel
  iovec iov[2] = {{const_cast<uint8_t*>(kNoOffload), kVnetHdrSize}, {const_cast<uint8_t*>(p), len}};
  if (!WriteTunFrame(vnet_ ? iov : iov + 1, vnet_ ? 2 : 1)) return Count(kTunWriteFailed);
  tunTxPackets_.fetch_add(1, std::memory_order_relaxed);
}

bool DataPlane::WriteTunFrame(const iovec* iov, int count) {
  for (int tries = 0; tries < 100; tries++) {
    ssize_t r = writev(tunFd_, iov, count);
    if (r >= 0) {
      tunWrites_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd pf{tunFd_, POLLOUT, 0};
      if (poll(&pf, 1, 10) > 0) continue;
    }
    break;
  }
  return false;
}

void DataPlane::FlushRx(RxOut& out) {
  auto& tun = out.tun;
  for (size_t i = 0; i < tun.size();) {
    // With offloads, consecutive segments of one TCP flow go in as one super-packet (one write, one trip
    // through the kernel's receive path).
    size_t k = 1, len = 0;
    if (vnet_ && i + 1 < tun.size()) {
      if (!out.merged) out.merged.reset(new uint8_t[kVnetHdrSize + 65535]);
      k = CoalesceTcp4(&tun[i], tun.size() - i, out.merged.get(), &len);
    }
    if (k < 2) {
      WriteTun(tun[i].data, tun[i].len);
      i++;
      continue;
    }
    iovec iov{out.merged.get(), len};
    if (WriteTunFrame(&iov, 1)) tunTxPackets_.fetch_add(k, std::memory_order_relaxed);
    else drops_[kTunWriteFailed].fetch_add(k, std::memory_order_relaxed);
    i += k;
  }
  tun.clear();
  if (out.denied && !out.denied->empty()) {
    if (!sink_->Denied(std::move(out.denied))) Count(kJsQueueFull);
  }
  out.denied.reset();
}

void DataPlane::InjectRx(const uint8_t* p, size_t len) {
  if (len < 1 || p[0] != kTunData || (p[1] | p[2] | p[3]) != 0 || len > kMaxDatagram) {
    Count(kBadPacket);
    return;
  }
  std::vector<uint8_t> copy(p, p + len);
  RxOut out;
  {
    auto l = ReadLock();
    ProcessTunData(copy.data(), len, NowMs(), out);
  }
  FlushRx(out);
}

void DataPlane::RxLoop() {
  // With GRO one read may hold a train of datagrams: buffers take a whole 64 KiB.
  UdpReceiver rx((gro_ || gro6_) ? kMaxDatagram : 2048);
  // The event fd first (close), then each socket: the IPv6 one only when there is one.
  pollfd pf[3] = {{eventFd_, POLLIN, 0}, {udpFd_, POLLIN, 0}, {udpFd6_, POLLIN, 0}};
  nfds_t nfds = udpFd6_ >= 0 ? 3 : 2;
  RxOut out;
  char host[64];
  for (;;) {
    int pr = poll(pf, nfds, -1);
    if (pr < 0 && errno != EINTR) break;
    if (pf[0].revents) break;
    for (nfds_t f = 1; f < nfds; f++) {
      if (pf[f].revents) RxDrain(pf[f].fd, rx, out, host, sizeof host);
    }
  }
}

// Reads one socket until it has nothing queued: TUN data into TUN, everything else to JS in batches.
void DataPlane::RxDrain(int fd, UdpReceiver& rx, RxOut& out, char* host, size_t hostLen) {
    for (;;) {
      int n = rx.Recv(fd);
      if (n <= 0) break;
      udpRxBatches_.fetch_add(1, std::memory_order_relaxed);
      std::unique_ptr<DatagramBatch> js;
      int64_t now = NowMs();
      {
        auto l = ReadLock();
        for (int i = 0; i < n; i++) {
          uint8_t* d = rx.Data(i);
          size_t total = rx.Len(i);
          size_t seg = rx.GroSize(i);
          if (seg == 0 || seg > total) seg = total;
          for (size_t off = 0; off < total || (total == 0 && off == 0); off += seg) {
            size_t len = std::min(seg, total - off);
            uint8_t* p = d + off;
            udpRxPackets_.fetch_add(1, std::memory_order_relaxed);
            if (len >= 4 && p[0] == kTunData && (p[1] | p[2] | p[3]) == 0) {
              ProcessTunData(p, len, now, out);
            } else {
              if (!js) js = std::make_unique<DatagramBatch>();
              size_t at = js->bytes.size();
              js->bytes.insert(js->bytes.end(), p, p + len);
              js->spans.emplace_back(at, len);
              int port;
              EndpointText(rx.Source(i), host, hostLen, &port);
              js->hosts.emplace_back(host);
              js->ports.push_back(port);
            }
            if (total == 0) break;
          }
        }
      }
      FlushRx(out);
      if (js && !sink_->Datagrams(std::move(js))) Count(kJsQueueFull);
      if (n < kBatch) break;
    }
}

// ICMP destination unreachable / fragmentation needed (RFC 1191) back into TUN.
static uint16_t Checksum(const uint8_t* p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) s += uint32_t{p[n - 1]} << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

size_t DataPlane::FragNeeded(const uint8_t* pkt, size_t len, int mtu, uint8_t* out) {
  size_t ihl = (pkt[0] & 0x0f) * 4u;
  size_t quote = std::min(len, ihl + 8);
  size_t total = 20 + 8 + quote;
  memset(out, 0, 28);
  out[0] = 0x45;
  out[2] = static_cast<uint8_t>(total >> 8);
  out[3] = static_cast<uint8_t>(total);
  out[8] = 64;
  out[9] = kIcmp;
  // From the original destination, as a router on the path would send it: Linux drops a packet that
  // arrives with one of its own addresses as source (martian), so one "from" our overlay IP never counts.
  memcpy(out + 12, pkt + 16, 4);
  memcpy(out + 16, pkt + 12, 4);  // back to the original source
  uint16_t c = Checksum(out, 20);
  out[10] = static_cast<uint8_t>(c >> 8);
  out[11] = static_cast<uint8_t>(c);
  uint8_t* icmp = out + 20;
  icmp[0] = 3;
  icmp[1] = 4;
  icmp[6] = static_cast<uint8_t>(mtu >> 8);
  icmp[7] = static_cast<uint8_t>(mtu);
  memcpy(icmp + 8, pkt, quote);
  c = Checksum(icmp, 8 + quote);
  icmp[2] = static_cast<uint8_t>(c >> 8);
  icmp[3] = static_cast<uint8_t>(c);
  return total;
}

void DataPlane::TxLoop() {
  // Not value-initialised (4 MiB of slots): pages become resident only as packets reach them.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kSlot * kBatch]);
  size_t lens[kBatch];
  TxScratch scratch;
  // With IFF_VNET_HDR one read may be a 64 KiB TSO super-packet: read whole, then cut into the slots.
  std::unique_ptr<uint8_t[]> offloaded(vnet_ ? new uint8_t[kVnetHdrSize + 65535] : nullptr);
  pollfd pf[2] = {{tunFd_, POLLIN, 0}, {eventFd_, POLLIN, 0}};
  for (;;) {
    int pr = poll(pf, 2, -1);
    if (pr < 0 && errno != EINTR) break;
    if (pf[1].revents) break;
    if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break;
    // Read until the TUN queue is empty (EAGAIN), sending every full batch, then the rest.
    int n = 0;
    for (;;) {
      ssize_t r;
      if (vnet_) {
        r = read(tunFd_, offloaded.get(), kVnetHdrSize + 65535);
        if (r < 0) break;
        tunReads_.fetch_add(1, std::memory_order_relaxed);
        n = TakeOffloaded(offloaded.get(), static_cast<size_t>(r), buf.get(), lens, n, scratch);
      } else {
        r = read(tunFd_, buf.get() + n * kSlot + kHeader, kSlot - kHeader - kTagSize);
        if (r < 0) break;
        tunReads_.fetch_add(1, std::memory_order_relaxed);
        tunRxPackets_.fetch_add(1, std::memory_order_relaxed);
        lens[n++] = static_cast<size_t>(r);
      }
      if (n == kBatch) {
        SendBatch(buf.get(), lens, n, {sender_.get(), sender6_.get()}, send_, scratch);
        n = 0;
      }
    }
    if (n > 0) SendBatch(buf.get(), lens, n, {sender_.get(), sender6_.get()}, send_, scratch);
  }
}

int DataPlane::TakeOffloaded(const uint8_t* read, size_t len, uint8_t* buf, size_t* lens, int n, TxScratch& t) {
  if (len < kVnetHdrSize + 20) {
    Count(kBadTunPacket);
    return n;
  }
  VnetHdr h = ReadVnetHdr(read);
  uint8_t* pkt = const_cast<uint8_t*>(read) + kVnetHdrSize;
  len -= kVnetHdrSize;
  uint8_t gso = h.gsoType & static_cast<uint8_t>(~kGsoEcn);
  if (gso == kGsoNone) {
    if ((h.flags & kVnetNeedsCsum) && !CompleteChecksum(pkt, len, h.csumStart, h.csumOffset)) {
      Count(kBadTunPacket);
      return n;
    }
    if (len > kSlot - kHeader - kTagSize) {
      Count(kBadTunPacket);
      return n;
    }
    memcpy(buf + n * kSlot + kHeader, pkt, len);
    lens[n++] = len;
    tunRxPackets_.fetch_add(1, std::memory_order_relaxed);
    return n;
  }
  int segs = gso == kGsoTcpV4 ? Tcp4SegmentCount(pkt, len, h.gsoSize) : -1;
  if (segs < 0) {
    Count(kBadTunPacket);
    return n;
  }
  tunRxPackets_.fetch_add(segs, std::memory_order_relaxed);
  for (int s = 0; s < segs;) {
    if (n == kBatch) {
      SendBatch(buf, lens, n, {sender_.get(), sender6_.get()}, send_, t);
      n = 0;
    }
    int k = std::min(kBatch - n, segs - s);
    SplitTcp4(pkt, len, h.gsoSize, s, k, buf + n * kSlot + kHeader, kSlot, lens + n);
    n += k;
    s += k;
  }
  return n;
}

void DataPlane::InjectTx(const std::vector<std::pair<const uint8_t*, size_t>>& pkts) {
  if (!injectBuf_) injectBuf_.reset(new uint8_t[kSlot * kBatch]);
  if (!injectSender_) injectSender_ = std::make_unique<UdpSender>(udpFd_, true, /*wait=*/false);
  if (!injectSender6_ && udpFd6_ >= 0) injectSender6_ = std::make_unique<UdpSender>(udpFd6_, true, /*wait=*/false);
  if (!injectScratch_) injectScratch_ = std::make_unique<TxScratch>();
  size_t lens[kBatch];
  for (size_t at = 0; at < pkts.size(); at += kBatch) {
    int n = 0;
    for (size_t i = at; i < pkts.size() && n < kBatch; i++) {
      size_t len = pkts[i].second;
      if (len > kSlot - kHeader - kTagSize) {
        Count(kBadTunPacket);
        continue;
      }
      memcpy(injectBuf_.get() + n * kSlot + kHeader, pkts[i].first, len);
      lens[n++] = len;
    }
    SendBatch(injectBuf_.get(), lens, n, {injectSender_.get(), injectSender6_.get()}, send_, *injectScratch_);
  }
}

// One batch of IPv4 packets at buf + i * kSlot + kHeader (lens[i] bytes): checked, sealed in place, sent
// grouped per endpoint (or handed to JS for the relay). The tx thread's stage, and injectTx's.
void DataPlane::SendBatch(uint8_t* buf, const size_t* lens, int n, Senders senders, SendCounters& counters,
                          TxScratch& t) {
  t.outs.clear();
  std::unique_ptr<RelayBatch> relay;
  std::unique_ptr<std::vector<uint32_t>> want;
  int64_t now = NowMs();
  {
    auto l = ReadLock();
    for (int i = 0; i < n; i++) {
      uint8_t* slot = buf + i * kSlot;
      uint8_t* pkt = slot + kHeader;
      size_t len = lens[i];
      PacketInfo info;
      if (!ParseIpv4(pkt, len, &info)) {
        Count(kBadTunPacket);
        continue;
      }
      len = (size_t{pkt[2]} << 8) | pkt[3];
      auto pit = byIp_.find(info.dst);
      if (pit == byIp_.end()) {
        Count(kNoPeer);
        continue;
      }
      Peer& peer = *pit->second;
      if (peer.keys.empty()) {
        if (!Stage(peer, pkt, len, now)) Count(kNoSession);
        int64_t last = peer.lastWantMs.load(std::memory_order_relaxed);
        if (now - last >= kWantIntervalMs && peer.lastWantMs.compare_exchange_strong(last, now)) {
          if (!want) want = std::make_unique<std::vector<uint32_t>>();
          want->push_back(peer.id);
        }
        continue;
      }
      if (kHeader + len + kTagSize > static_cast<size_t>(peer.cfg.maxDatagram)) {
        Count(kTooBig);
        bool df = (pkt[6] & 0x40) != 0;
        int mtu = peer.cfg.maxDatagram - static_cast<int>(kHeader + kTagSize);
        if (df && mtu >= 68) {
          std::vector<uint8_t> m(20 + 8 + 60 + 8);
          m.resize(FragNeeded(pkt, len, mtu, m.data()));
          t.icmps.push_back(std::move(m));
        }
        continue;
      }
      Keypair& kp = SendingKeys(peer);
      uint64_t counter = kp.sendCounter.fetch_add(1, std::memory_order_relaxed);
      if (counter >= kRejectAfterMessages) {
        Count(kKeyExhausted);
        continue;
      }
      conntrack_.Outbound(info, now);
      slot[0] = kTunData;
      slot[1] = slot[2] = slot[3] = 0;
      PutLe32(slot + 4, kp.remoteIndex);
      PutLe64(slot + 8, counter);
      if (!kp.send.Seal(counter, pkt, len, pkt)) {
        Count(kKeyExhausted);
        continue;
      }
      size_t sealed = kHeader + len + kTagSize;
      peer.txPackets.fetch_add(1, std::memory_order_relaxed);
      peer.txBytes.fetch_add(len, std::memory_order_relaxed);
      if (peer.cfg.relay) {
        if (!relay) relay = std::make_unique<RelayBatch>();
        size_t at = relay->bytes.size();
        relay->bytes.insert(relay->bytes.end(), slot, slot + sealed);
        relay->spans.emplace_back(at, sealed);
        relay->peerIds.push_back(peer.id);
      } else {
        t.eps[t.outs.size()] = peer.cfg.endpoint;  // a copy: setPeer may change it once the lock is gone
        t.outs.push_back({slot, sealed, nullptr});
      }
    }
  }
  for (size_t i = 0; i < t.outs.size(); i++) t.outs[i].to = &t.eps[i];
  if (!t.outs.empty()) {
    uint64_t failedBefore = counters.failed.load();
    if (!senders.v6) {
      senders.first->Send(t.outs, counters);
    } else {
      // Two sockets: each datagram leaves on its destination's family (in order within each family).
      t.outs4.clear();
      t.outs6.clear();
      for (const auto& o : t.outs) (o.to->addr.ss_family == AF_INET6 ? t.outs6 : t.outs4).push_back(o);
      if (!t.outs4.empty()) senders.first->Send(t.outs4, counters);
      if (!t.outs6.empty()) senders.v6->Send(t.outs6, counters);
    }
    uint64_t f = counters.failed.load() - failedBefore;
    if (f) drops_[kUdpSendFailed].fetch_add(f);
  }
  for (auto& m : t.icmps) WriteTun(m.data(), m.size());
  t.icmps.clear();
  if (relay && !sink_->RelaySend(std::move(relay))) Count(kJsQueueFull);
  if (want && !sink_->Want(std::move(want))) Count(kJsQueueFull);
}

Stats DataPlane::GetStats() {
  Stats s{};
  s.udpRxPackets = udpRxPackets_.load();
  s.udpRxBatches = udpRxBatches_.load();
  s.udpTxPackets = send_.packets.load();
  s.udpTxCalls = send_.calls.load();
  s.tunRxPackets = tunRxPackets_.load();
  s.tunReads = tunReads_.load();
  s.tunWrites = tunWrites_.load();
  s.staged = staged_.load();
  s.tunTxPackets = tunTxPackets_.load();
  for (int i = 0; i < kDropCount; i++) s.drops[i] = drops_[i].load();
  s.gso = sender_ ? sender_->gso() : false;
  s.gro = gro_;
  s.tunVnetHdr = vnet_;
  return s;
}

std::vector<PeerStat> DataPlane::GetPeerStats() {
  std::vector<PeerStat> v;
  int64_t now = NowMs();
  auto l = ReadLock();
  for (auto& e : peers_) {
    Peer& p = *e.second;
    int64_t last = p.lastRxMs.load();
    v.push_back({p.id, last < 0 ? -1 : now - last, p.rxPackets.load(), p.txPackets.load(), p.rxBytes.load(), p.txBytes.load()});
  }
  return v;
}

}  // namespace ember
