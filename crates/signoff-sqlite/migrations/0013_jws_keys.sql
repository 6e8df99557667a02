-- Signing keys of the other JWS algorithms, for the ID and logout tokens of clients that ask for
-- them: RS256 (PKCS#8 of an RSA 2048 key) and ES256 (PKCS#8 of a P-256 key). The Ed25519 keys
-- stay in signing_keys, whose every row nodes of the previous release read as an Ed25519 seed; a
-- later release can move them here once no such node runs. Changes take signing_keys' lock.
CREATE TABLE jws_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
    private_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
