-- What a client registered beyond its URLs (OpenID Connect Dynamic Client Registration names:
-- grant_types, token_endpoint_auth_method, id_token_signed_response_alg, the logout
-- session_required flags), as JSON. NULL for a client registered before: it signs nobody in.
ALTER TABLE clients ADD COLUMN profile TEXT;
