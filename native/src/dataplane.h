// The TUN data plane: an rx thread (UDP socket -> decrypt -> firewall -> TUN) and a tx thread
// (TUN -> encrypt -> UDP socket), sharing the daemon-owned peer and key tables. No JavaScript runs per
// packet: what the daemon must see (other datagrams, relay sends, denied flows, wanted sessions) leaves
// through a Sink one call per batch.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "aead.h"
#include "firewall.h"
#include "offload.h"
#include "replay.h"
#include "udp_batch.h"

namespace ember {

// Drop reasons, in the order of kDropNames.
enum Drop {
  kBadTunPacket, kNoPeer, kNoSession, kReplay, kAuthFailed, kUnknownIndex, kSpoofedSource, kFirewall, kTooBig,
  kBadPacket, kNotForUs, kFragment, kKeyExhausted, kUdpSendFailed, kTunWriteFailed, kNoTun, kJsQueueFull,
  kDropCount
};
extern const char* const kDropNames[kDropCount];

struct DatagramBatch {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<size_t, size_t>> spans;  // offset, length in bytes
  std::vector<std::string> hosts;
  std::vector<int> ports;
};
struct RelayBatch {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<size_t, size_t>> spans;
  std::vector<uint32_t> peerIds;
};
struct DeniedFlow {
  uint32_t peerId;
  uint8_t proto;
  uint32_t src, dst;
  uint16_t sport, dport;
};

// Implemented by the bindings: each call hands one batch to the JS thread. Returns false when it could not
// be queued (the JS side is behind); the data plane counts that as a drop.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual bool Datagrams(std::unique_ptr<DatagramBatch> b) = 0;
  virtual bool RelaySend(std::unique_ptr<RelayBatch> b) = 0;
  virtual bool Denied(std::unique_ptr<std::vector<DeniedFlow>> b) = 0;
  virtual bool Want(std::unique_ptr<std::vector<uint32_t>> b) = 0;
};

struct PeerConfig {
  uint32_t overlayIp = 0;  // host order
  bool relay = true;
  Endpoint endpoint;
  int maxDatagram = 1472;
  FirewallTable inbound;
};

struct Keypair {
  Keypair(uint32_t peer, uint32_t li, uint32_t ri, const uint8_t* sk, const uint8_t* rk)
      : peerId(peer), localIndex(li), remoteIndex(ri), send(sk, true), recv(rk, false) {}
  uint32_t peerId, localIndex, remoteIndex;
  Aead send;
  std::atomic<uint64_t> sendCounter{0};
  // An initiator's keys are unconfirmed until something arrives under them (the peer has them too).
  std::atomic<bool> confirmed{true};
  std::mutex rxMu;  // recv context + window: the rx thread and injectRx (JS thread) both open
  Aead recv;
  ReplayWindow window;
};

struct Peer {
  uint32_t id = 0;
  PeerConfig cfg;
  std::vector<std::shared_ptr<Keypair>> keys;  // newest last; SendingKeys() picks the one that sends
  std::atomic<int64_t> lastRxMs{-1}, lastWantMs{-1000000};
  // Packets from TUN that waited for a session (kStagedMax at most, as wireguard-go stages them): sent as soon
  // as keys arrive, so the first packet after a rest is delayed by a handshake, not lost.
  std::mutex stagedMu;
  std::vector<std::vector<uint8_t>> staged;
  int64_t stagedSinceMs = 0;
  std::atomic<uint64_t> rxPackets{0}, txPackets{0}, rxBytes{0}, txBytes{0};
};

struct Stats {
  uint64_t udpRxPackets, udpRxBatches, udpTxPackets, udpTxCalls, tunRxPackets, tunReads, tunTxPackets, tunWrites;
  uint64_t staged;  // packets that waited for a session, then left with it
  uint64_t drops[kDropCount];
  bool gso, gro, tunVnetHdr;
};
struct PeerStat {
  uint32_t peerId;
  int64_t sinceRxMs;
  uint64_t rxPackets, txPackets, rxBytes, txBytes;
};

int64_t NowMs();

class DataPlane {
 public:
  // udpFd: the node's IPv4 socket (or its only one); udpFd6: its IPv6-only socket on the same port, or -1.
  DataPlane(int udpFd, int udpFd6, int tunFd, uint32_t overlayIp, Sink* sink);
  ~DataPlane();
  bool Start(std::string* err);
  void Close();
  void SetPeer(uint32_t id, const PeerConfig& cfg);
  void RemovePeer(uint32_t id);
  // confirmed = false for an initiator's new keys: the previous keys keep sending until they are confirmed.
  bool AddKeys(uint32_t peerId, uint32_t li, uint32_t ri, const uint8_t* sk, const uint8_t* rk, bool confirmed,
               std::string* err);
  void ConfirmKeys(uint32_t li);
  void DropKeys(uint32_t li);
  void InjectRx(const uint8_t* p, size_t len);
  // IPv4 packets as if read from TUN, on the calling thread: the tx stage without the TUN device. Its sends
  // never wait for socket buffer space (the JS thread must not block): a datagram without room is dropped and
  // counted (udp_send_failed).
  void InjectTx(const std::vector<std::pair<const uint8_t*, size_t>>& pkts);
  Stats GetStats();
  std::vector<PeerStat> GetPeerStats();
  // The family of the socket that sends to this host: the IPv6 socket for an IPv6 address when there is one.
  int FamilyFor(const char* host) const;

 private:
  struct RxOut {
    std::vector<PacketRef> tun;
    std::unique_ptr<std::vector<DeniedFlow>> denied;
    std::unique_ptr<uint8_t[]> merged;  // with offloads: segments coalesced for one TUN write (offload.h)
  };
  // Writers (the JS thread) announce themselves so the two reader threads let them in between batches.
  std::shared_lock<std::shared_mutex> ReadLock();
  std::unique_lock<std::shared_mutex> WriteLock();
  void RxLoop();
  void RxDrain(int fd, UdpReceiver& rx, RxOut& out, char* host, size_t hostLen);
  void TxLoop();
  // What one batch of outgoing IP packets needs besides the packets themselves; reused batch after batch.
  struct TxScratch {
    std::vector<OutPacket> outs, outs4, outs6;  // outs4/outs6: outs split by family when there are two sockets
    Endpoint eps[kBatch];
    std::vector<std::vector<uint8_t>> icmps;
    TxScratch() {
      outs.reserve(kBatch);
      outs4.reserve(kBatch);
      outs6.reserve(kBatch);
    }
  };
  // One read from a TUN with IFF_VNET_HDR: a packet or a TSO super-packet, as packets into slots from n on;
  // sends full batches on the way. Returns the new n.
  int TakeOffloaded(const uint8_t* read, size_t len, uint8_t* buf, size_t* lens, int n, TxScratch& t);
  // One sender per socket: [0] the first socket, [1] the IPv6 one (null without).
  struct Senders { UdpSender* first; UdpSender* v6; };
  void SendBatch(uint8_t* buf, const size_t* lens, int n, Senders senders, SendCounters& counters, TxScratch& t);
  void ProcessTunData(uint8_t* p, size_t len, int64_t now, RxOut& out);  // table lock held (shared)
  void FlushRx(RxOut& out);
  void WriteTun(const uint8_t* p, size_t len);
  bool WriteTunFrame(const iovec* iov, int count);
  void Count(Drop d) { drops_[d].fetch_add(1, std::memory_order_relaxed); }
  // Holds one packet for a peer with no keys yet; false when its queue is full.
  bool Stage(Peer& peer, const uint8_t* pkt, size_t len, int64_t now);
  size_t FragNeeded(const uint8_t* pkt, size_t len, int mtu, uint8_t* out);

  int udpFd_, udpFd6_, tunFd_, family_;
  uint32_t overlayIp_;
  Sink* sink_;
  int eventFd_ = -1;
  bool started_ = false, closed_ = false;
  bool gro_ = false, gro6_ = false;
  bool vnet_ = false;  // the TUN fd was opened with IFF_VNET_HDR (offload.h)
  std::thread rx_, tx_;
  std::unique_ptr<UdpSender> sender_, sender6_;
  // injectTx's own slots, sender and scratch (the JS thread's; the tx thread keeps its own).
  std::unique_ptr<uint8_t[]> injectBuf_;
  std::unique_ptr<UdpSender> injectSender_, injectSender6_;
  std::unique_ptr<TxScratch> injectScratch_;

  std::shared_mutex tableMu_;
  std::atomic<int> writersWaiting_{0};
  std::unordered_map<uint32_t, std::shared_ptr<Peer>> peers_;
  std::unordered_map<uint32_t, std::shared_ptr<Peer>> byIp_;
  std::unordered_map<uint32_t, std::shared_ptr<Keypair>> keys_;
  Conntrack conntrack_;

  std::atomic<uint64_t> udpRxPackets_{0}, udpRxBatches_{0}, tunRxPackets_{0}, tunReads_{0}, tunTxPackets_{0};
  std::atomic<uint64_t> tunWrites_{0}, staged_{0};
  SendCounters send_;
  std::atomic<uint64_t> drops_[kDropCount] = {};
};

}  // namespace ember
