// The inbound firewall of the TUN path: per peer tables of allowed ports and ICMP echo, plus connection
// tracking so that replies to flows this node opened pass whatever the peer's table says.
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ember {

constexpr uint8_t kIcmp = 1, kTcp = 6, kUdp = 17;

struct FirewallTable {
  std::vector<std::pair<uint16_t, uint16_t>> tcp, udp;
  bool icmp = false;
};

// The parts of an IPv4 packet the firewall looks at. Addresses and ports in host order.
struct PacketInfo {
  uint8_t proto = 0;
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t icmpType = 0;
  uint16_t icmpId = 0;
  bool hasPorts = false;    // TCP/UDP header (or ICMP header) present: first fragment, long enough
  bool fragment = false;    // a non-first fragment
  // ICMP errors: the quoted packet's header (our original outbound packet).
  bool hasInner = false;
  uint8_t innerProto = 0;
  uint32_t innerDst = 0;
  uint16_t innerSport = 0, innerDport = 0;
};

// Validates an IPv4 header (version 4, IHL >= 5, total length <= len). Fills info; false when invalid.
bool ParseIpv4(const uint8_t* p, size_t len, PacketInfo* info);

struct FlowKey {
  uint32_t remote;
  uint16_t localPort, remotePort;
  uint8_t proto;
  bool operator==(const FlowKey& o) const {
    return remote == o.remote && localPort == o.localPort && remotePort == o.remotePort && proto == o.proto;
  }
};
struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const {
    uint64_t v = (uint64_t{k.remote} << 32) ^ (uint64_t{k.localPort} << 16) ^ k.remotePort ^ (uint64_t{k.proto} << 56);
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    return static_cast<size_t>(v);
  }
};

enum class Verdict { kPass, kDeny, kFragment };

class Conntrack {
 public:
  // A packet leaving through the tunnel (from TUN): its flow's replies may come back.
  void Outbound(const PacketInfo& p, int64_t nowMs);
  // A packet from the peer (src = peer, dst = us): conntrack first, then the peer's table; an allowed new
  // flow is tracked. key receives the flow for denial reports.
  Verdict Inbound(const PacketInfo& p, const FirewallTable& table, int64_t nowMs, FlowKey* key);
  // The peer's table changed or the peer left: flows it opened must be judged again.
  void ForgetInbound(uint32_t remote);
  // True at most once per flow per second.
  bool ReportDenied(const FlowKey& k, int64_t nowMs);
  size_t size();

 private:
  struct Entry {
    int64_t expires;
    bool inbound;
  };
  void SweepLocked(int64_t nowMs);
  std::mutex mu_;
  std::unordered_map<FlowKey, Entry, FlowKeyHash> flows_;
  std::unordered_map<FlowKey, int64_t, FlowKeyHash> denied_;
  int64_t lastSweep_ = 0;
};

}  // namespace ember
