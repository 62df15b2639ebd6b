#include "firewall.h"

namespace ember {

constexpr int64_t kFlowTimeoutMs = 120000;
constexpr int64_t kIcmpTimeoutMs = 30000;
constexpr size_t kMaxFlows = 65536;

static uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
static uint32_t Be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

bool ParseIpv4(const uint8_t* p, size_t len, PacketInfo* in) {
  *in = PacketInfo{};
  if (len < 20 || (p[0] >> 4) != 4) return false;
  size_t ihl = (p[0] & 0x0f) * 4u;
  size_t total = Be16(p + 2);
  if (ihl < 20 || total < ihl || total > len) return false;
  in->proto = p[9];
  in->src = Be32(p + 12);
  in->dst = Be32(p + 16);
  uint16_t frag = Be16(p + 6);
  if ((frag & 0x1fff) != 0) {
    in->fragment = true;
    return true;
  }
  const uint8_t* l4 = p + ihl;
  size_t l4len = total - ihl;
  if ((in->proto == kTcp || in->proto == kUdp) && l4len >= 4) {
    in->sport = Be16(l4);
    in->dport = Be16(l4 + 2);
    in->hasPorts = true;
  } else if (in->proto == kIcmp && l4len >= 8) {
    in->icmpType = l4[0];
    in->icmpId = Be16(l4 + 4);
    in->hasPorts = true;
    // Destination unreachable, time exceeded, parameter problem quote our packet's header + 8 bytes.
    if ((l4[0] == 3 || l4[0] == 11 || l4[0] == 12) && l4len >= 8 + 20 + 4) {
      const uint8_t* q = l4 + 8;
      size_t qihl = (q[0] & 0x0f) * 4u;
      if ((q[0] >> 4) == 4 && qihl >= 20 && l4len >= 8 + qihl + 4) {
        in->hasInner = true;
        in->innerProto = q[9];
        in->innerDst = Be32(q + 16);
        in->innerSport = Be16(q + qihl);
        in->innerDport = Be16(q + qihl + 2);
        if (in->innerProto == kIcmp) {  // our echo request: its id
          in->innerSport = Be16(q + qihl + 4);
          in->innerDport = 0;
        }
      }
    }
  }
  return true;
}

static bool InRanges(const std::vector<std::pair<uint16_t, uint16_t>>& r, uint16_t port) {
  for (auto& x : r)
    if (port >= x.first && port <= x.second) return true;
  return false;
}

void Conntrack::SweepLocked(int64_t now) {
  if (now - lastSweep_ < 1000 && flows_.size() < kMaxFlows) return;
  lastSweep_ = now;
  for (auto it = flows_.begin(); it != flows_.end();) it = it->second.expires < now ? flows_.erase(it) : std::next(it);
  for (auto it = denied_.begin(); it != denied_.end();) it = now - it->second >= 1000 ? denied_.erase(it) : std::next(it);
}

void Conntrack::Outbound(const PacketInfo& p, int64_t now) {
  if (!p.hasPorts) return;
  FlowKey k{p.dst, 0, 0, p.proto};
  int64_t timeout = kFlowTimeoutMs;
  if (p.proto == kTcp || p.proto == kUdp) {
    k.localPort = p.sport;
    k.remotePort = p.dport;
  } else if (p.proto == kIcmp && p.icmpType == 8) {
    k.localPort = p.icmpId;
    timeout = kIcmpTimeoutMs;
  } else {
    return;
  }
  std::lock_guard<std::mutex> g(mu_);
  SweepLocked(now);
  auto it = flows_.find(k);
  if (it != flows_.end()) {
    it->second.expires = now + timeout;
    it->second.inbound = false;  // we sent on it: it is ours now as well
    return;
  }
  if (flows_.size() >= kMaxFlows) return;
  flows_.emplace(k, Entry{now + timeout, false});
}

Verdict Conntrack::Inbound(const PacketInfo& p, const FirewallTable& t, int64_t now, FlowKey* key) {
  *key = FlowKey{p.src, p.dport, p.sport, p.proto};
  if (p.fragment || !p.hasPorts) return Verdict::kFragment;
  std::lock_guard<std::mutex> g(mu_);
  if (p.proto == kTcp || p.proto == kUdp) {
    auto it = flows_.find(*key);
    if (it != flows_.end() && it->second.expires >= now) {
      it->second.expires = now + kFlowTimeoutMs;
      return Verdict::kPass;
    }
    if (!InRanges(p.proto == kTcp ? t.tcp : t.udp, p.dport)) return Verdict::kDeny;
    SweepLocked(now);
    if (flows_.size() < kMaxFlows) flows_[*key] = Entry{now + kFlowTimeoutMs, true};
    return Verdict::kPass;
  }
  if (p.proto == kIcmp) {
    *key = FlowKey{p.src, p.icmpType, 0, kIcmp};
    if (p.icmpType == 0) {  // echo reply to our ping
      auto it = flows_.find(FlowKey{p.src, p.icmpId, 0, kIcmp});
      return it != flows_.end() && it->second.expires >= now ? Verdict::kPass : Verdict::kDeny;
    }
    if (p.icmpType == 8) return t.icmp ? Verdict::kPass : Verdict::kDeny;
    if (p.hasInner) {  // an error about a packet we sent on a tracked flow
      auto it = flows_.find(FlowKey{p.innerDst, p.innerSport, p.innerDport, p.innerProto});
      return it != flows_.end() && it->second.expires >= now && !it->second.inbound ? Verdict::kPass : Verdict::kDeny;
    }
    return Verdict::kDeny;
  }
  return Verdict::kDeny;
}

void Conntrack::ForgetInbound(uint32_t remote) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto it = flows_.begin(); it != flows_.end();)
    it = (it->first.remote == remote && it->second.inbound) ? flows_.erase(it) : std::next(it);
}

bool Conntrack::ReportDenied(const FlowKey& k, int64_t now) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = denied_.find(k);
  if (it != denied_.end() && now - it->second < 1000) return false;
  if (denied_.size() >= kMaxFlows) SweepLocked(now);
  if (denied_.size() >= kMaxFlows) return false;
  denied_[k] = now;
  return true;
}

size_t Conntrack::size() {
  std::lock_guard<std::mutex> g(mu_);
  return flows_.size();
}

}  // namespace ember
