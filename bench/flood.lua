-- Scenario 6: sign-ins as fast as wrk can send them (each one an argon2id hash), for the
-- account bench/run.sh registered for the flood (never the one whose session is measured).
wrk.method = "POST"
wrk.body = '{"email":"flood@example.com","password":"correct horse battery staple"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
