-- The key that signs list page tokens, made once per database so that every API replica agrees
-- on it without a setting. gen_random_uuid() draws from the server's strong random source.
CREATE TABLE audit_sweeper_secret (
  name  text PRIMARY KEY,
  value text NOT NULL
);
INSERT INTO audit_sweeper_secret (name, value)
  VALUES ('page_token_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
