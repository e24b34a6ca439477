def test_healthz_live(server):
    r = server.client(None).get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "version": "0.1.0", "log_dir_writable": True, "db_ok": True}
