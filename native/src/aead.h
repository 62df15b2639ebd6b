// ChaCha20-Poly1305 (RFC 8439) through the OpenSSL that Node links. One EVP context per key and direction:
// the key schedule runs once, each packet only sets the nonce (4 zero bytes || counter u64 LE).
#pragma once
#include <cstddef>
#include <cstdint>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace ember {

constexpr size_t kKeySize = 32;
constexpr size_t kTagSize = 16;

class Aead {
 public:
  // encrypt selects the direction; a context is never used both ways.
  Aead(const uint8_t key[kKeySize], bool encrypt);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;
  bool ok() const { return ctx_ != nullptr; }
  // Writes len ciphertext bytes then the tag to out (out may equal in). Returns false on an OpenSSL error.
  bool Seal(uint64_t counter, const uint8_t* in, size_t len, uint8_t* out);
  // in holds len ciphertext bytes followed by the tag; writes len plaintext bytes to out (may equal in).
  bool Open(uint64_t counter, const uint8_t* in, size_t len, uint8_t* out);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_;
};

}  // namespace ember
