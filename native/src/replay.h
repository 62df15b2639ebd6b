// Sliding replay window after RFC 6479, the same semantics as ReplayWindow in src/crypto/transport.ts:
// a ring of 32-bit words, usable span = window minus one word, counters at or past the key's message
// limit refused. check() before decrypting, update() only after the packet authenticated.
#pragma once
#include <cstdint>
#include <cstring>

namespace ember {

constexpr uint64_t kReplayWindowSize = 8192;  // REPLAY_WINDOW_SIZE
constexpr uint64_t kWordBits = 32;
constexpr uint64_t kWords = kReplayWindowSize / kWordBits;
constexpr uint64_t kReplaySpan = kReplayWindowSize - kWordBits;
// REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER - 2^13.
constexpr uint64_t kRejectAfterMessages = ((uint64_t{1} << 53) - 1) - 8192;

class ReplayWindow {
 public:
  ReplayWindow() { memset(bits_, 0, sizeof bits_); }
  bool Check(uint64_t c) const {
    if (c >= kRejectAfterMessages) return false;
    if (!seen_ || c > top_) return true;
    if (top_ - c >= kReplaySpan) return false;
    return (bits_[(c / kWordBits) % kWords] & (1u << (c % kWordBits))) == 0;
  }
  void Update(uint64_t c) {
    if (!seen_ || c > top_) {
      uint64_t newBlock = c / kWordBits;
      // top = -1 in the TS version: oldBlock = -1, so block 0 onward is cleared.
      int64_t oldBlock = seen_ ? static_cast<int64_t>(top_ / kWordBits) : -1;
      uint64_t diff = static_cast<uint64_t>(static_cast<int64_t>(newBlock) - oldBlock);
      uint64_t clear = diff < kWords ? diff : kWords;
      for (uint64_t i = 1; i <= clear; i++) bits_[static_cast<uint64_t>(oldBlock + static_cast<int64_t>(i)) % kWords] = 0;
      top_ = c;
      seen_ = true;
    } else if (top_ - c >= kReplaySpan) {
      return;
    }
    bits_[(c / kWordBits) % kWords] |= 1u << (c % kWordBits);
  }

 private:
  uint32_t bits_[kWords];
  uint64_t top_ = 0;
  bool seen_ = false;
};

}  // namespace ember
