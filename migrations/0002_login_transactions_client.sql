-- 0002: who started a login transaction, and its handle sealed for the callback page.
-- `client` is 'api' (a script or app called /sso/sso_url and will call /sso/authenticate)
-- or 'desktop' (the agent's own tray started it and completes it at /sso/callback).
-- `handle_enc` is the `Identifier`, sealed with the data key, so the callback page can show
-- it to a user who copies it back into an API client; it is never stored in clear.
ALTER TABLE login_transactions ADD COLUMN client TEXT NOT NULL DEFAULT 'api'
    CHECK (client IN ('api', 'desktop'));
ALTER TABLE login_transactions ADD COLUMN handle_enc TEXT;
