-- 0007: an access token minted from a session (the session-token grant) remembers that
-- session's id, so signing out of the session revokes the tokens minted from it.
ALTER TABLE access_tokens ADD COLUMN session_jti TEXT;
CREATE INDEX access_tokens_session ON access_tokens(session_jti) WHERE session_jti IS NOT NULL;
