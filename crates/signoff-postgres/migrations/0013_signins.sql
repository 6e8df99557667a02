-- A browser's sign-in (the `sid` of OpenID Connect): made when a password signs a browser in,
-- kept when its session is rotated (the row stays) and by its remember-me series, whose resumed
-- sessions carry it on. Rows written before (and by nodes of the previous release, which leave
-- it NULL) read as a sign-in of their own: the session's id, the series' session's id.
-- authenticated_at: when a password last signed the browser in (OpenID `auth_time`, for
-- `max_age`): a resumed session's is its series'; NULL reads as the session's creation.
ALTER TABLE sessions ADD COLUMN signin_id TEXT;
ALTER TABLE remember_tokens ADD COLUMN signin_id TEXT;
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT;
UPDATE sessions SET signin_id = id WHERE signin_id IS NULL;
UPDATE remember_tokens SET signin_id = session_id WHERE signin_id IS NULL;
CREATE INDEX sessions_signin ON sessions (signin_id);
CREATE INDEX remember_tokens_signin ON remember_tokens (signin_id);
