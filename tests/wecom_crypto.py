"""WeChat Work's callback encryption, written from its documentation (加解密方案说明), not
from wechatpy: what the server does to a message before it POSTs it to us.

- AES-256-CBC; key = base64decode(EncodingAESKey + "="), IV = the key's first 16 bytes;
- plaintext = 16 random bytes + the XML's length (4 bytes, big-endian) + XML + corp id,
  PKCS#7-padded to a multiple of 32 bytes; the ciphertext is sent base64'd;
- msg_signature = SHA1 of the sorted [token, timestamp, nonce, ciphertext], concatenated.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat Work pads to 32 bytes, not AES's 16


def new_aes_key() -> str:
    """An EncodingAESKey: 43 characters of base64 (32 bytes without the final '=')."""
    return base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Encryptor:
    token: str
    aes_key: str  # EncodingAESKey, 43 characters
    corp_id: str

    @property
    def key(self) -> bytes:
        key = base64.b64decode(self.aes_key + "=")
        assert len(key) == 32
        return key

    def encrypt(self, xml: bytes, corp_id: str | None = None) -> str:
        plain = os.urandom(16) + struct.pack(">I", len(xml)) + xml + (corp_id or self.corp_id).encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def signature(self, timestamp: str, nonce: str, ciphertext: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, ciphertext])).encode()).hexdigest()

    def body(self, ciphertext: str, to_user: str | None = None, agent_id: str = "1000002") -> bytes:
        """The POST body: the outer XML."""
        return (
            f"<xml><ToUserName><![CDATA[{to_user or self.corp_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID>"
            f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>"
        ).encode()
