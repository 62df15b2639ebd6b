#include "aead.h"

#include <openssl/evp.h>

#include <cstring>

namespace ember {

static void Nonce(uint64_t counter, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

Aead::Aead(const uint8_t key[kKeySize], bool encrypt) : encrypt_(encrypt) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) return;
  // Cipher and key once; per packet only the IV changes (the provider redoes the Poly1305 key from it).
  int r = encrypt ? EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), nullptr, key, nullptr)
                  : EVP_DecryptInit_ex(c, EVP_chacha20_poly1305(), nullptr, key, nullptr);
  if (r != 1) {
    EVP_CIPHER_CTX_free(c);
    return;
  }
  ctx_ = c;
}

Aead::~Aead() {
  if (ctx_) EVP_CIPHER_CTX_free(ctx_);
}

bool Aead::Seal(uint64_t counter, const uint8_t* in, size_t len, uint8_t* out) {
  if (!ctx_ || !encrypt_ || len > 0x7fffffff) return false;
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int n = 0, f = 0;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1) return false;
  if (len && EVP_EncryptUpdate(ctx_, out, &n, in, static_cast<int>(len)) != 1) return false;
  if (EVP_EncryptFinal_ex(ctx_, out + n, &f) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagSize, out + len) == 1;
}

bool Aead::Open(uint64_t counter, const uint8_t* in, size_t len, uint8_t* out) {
  if (!ctx_ || encrypt_ || len > 0x7fffffff) return false;
  uint8_t nonce[12], tag[kTagSize];
  memcpy(tag, in + len, kTagSize);  // in-place decryption may overwrite nothing past len, but copy to be safe
  Nonce(counter, nonce);
  int n = 0, f = 0;
  if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) != 1) return false;
  if (len && EVP_DecryptUpdate(ctx_, out, &n, in, static_cast<int>(len)) != 1) return false;
  // Final verifies the tag; on failure the caller discards out (it was decrypted before the check).
  return EVP_DecryptFinal_ex(ctx_, out + n, &f) == 1;
}

}  // namespace ember
