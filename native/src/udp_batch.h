// Batched UDP I/O on the daemon's socket: recvmmsg with UDP GRO (coalesced datagrams split by the segment
// size the kernel reports), and sends grouped per endpoint with UDP GSO (one sendmsg, UDP_SEGMENT) or,
// without GSO, sendmmsg. Every send carries an explicit TTL/hop limit of 64: the daemon lowers the socket's
// TTL for a moment while hole punching, and data must not leave with that TTL.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace ember {

constexpr int kBatch = 64;

// Endpoint in the socket's own family (IPv4 in an AF_INET6 socket is v4-mapped).
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool Same(const Endpoint& o) const;
};

int SocketFamily(int fd);
bool EnableGro(int fd);
// Socket buffers big enough for a batch burst at line rate (root may exceed net.core.[rw]mem_max).
void GrowBuffers(int fd);
void DisableGro(int fd);
// host/port to an endpoint for a socket of this family; false when the address does not fit it.
bool MakeEndpoint(int family, const char* host, int port, Endpoint* out);
// Source address text and port of a received datagram (v4-mapped IPv6 shown as IPv4).
void EndpointText(const sockaddr_storage& a, char* host, size_t hostLen, int* port);

class UdpReceiver {
 public:
  explicit UdpReceiver(size_t bufSize);
  // One recvmmsg (MSG_DONTWAIT): returns the message count, 0 when nothing is queued, -1 on error.
  int Recv(int fd);
  uint8_t* Data(int i) { return bufs_.get() + static_cast<size_t>(i) * bufSize_; }
  size_t Len(int i) const { return msgs_[i].msg_len; }
  // Segment size when the kernel coalesced several datagrams (UDP GRO), else 0.
  int GroSize(int i) const;
  const sockaddr_storage& Source(int i) const { return addrs_[i]; }

 private:
  size_t bufSize_;
  // Not value-initialised: with GRO each slot is 64 KiB, and only the pages datagrams reach become resident.
  std::unique_ptr<uint8_t[]> bufs_;
  std::vector<uint8_t> ctrl_;
  mmsghdr msgs_[kBatch];
  iovec iovs_[kBatch];
  sockaddr_storage addrs_[kBatch];
};

struct OutPacket {
  const uint8_t* data;
  size_t len;
  const Endpoint* to;
};

struct SendCounters {
  std::atomic<uint64_t> packets{0}, calls{0}, failed{0}, gsoCalls{0};
};

class UdpSender {
 public:
  // wait: on a full socket buffer, wait for room (bounded) instead of dropping; only off the JS thread.
  UdpSender(int fd, bool tryGso, bool wait = true);
  // Sends all packets in order; waits for socket buffer space (bounded) or drops, as constructed.
  void Send(const std::vector<OutPacket>& pkts, SendCounters& c);
  bool gso() const { return gso_; }

 private:
  bool SendGso(const OutPacket* p, int n, size_t segSize, SendCounters& c);
  void SendMmsg(const OutPacket* p, int n, SendCounters& c);
  bool WaitWritable();
  int fd_;
  int family_;
  bool gso_;
  bool wait_;
};

}  // namespace ember
