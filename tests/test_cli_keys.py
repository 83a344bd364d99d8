"""The `darkroom keys` commands (create, list, rotate, revoke: keys named by id and prefix, only
hashes stored) and `darkroom tenants budget`, run as real processes."""

from sqlalchemy import select

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import ApiKey
from app.services.keys import hash_key
from tests.support import cli_api_key, run_cli, serving


async def test_keys_create_prints_the_key_last_and_stores_only_its_hash(tmp_path):
    settings = Settings(data_dir=tmp_path)

    result = run_cli(settings, "keys", "create", "--tenant", "acme")

    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("dk_") and len(key) > 40
    engine = create_engine(str(settings.database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            stored = list(await session.scalars(select(ApiKey)))
    finally:
        await engine.dispose()
    assert [row.key_hash for row in stored] == [hash_key(key)]
    assert key not in (tmp_path / "darkroom.db").read_bytes().decode("latin-1")


def listed_keys(settings: Settings, *arguments: str) -> list[dict[str, str]]:
    """`darkroom keys list` as rows keyed by its header."""
    result = run_cli(settings, "keys", "list", *arguments)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.strip().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


async def test_keys_list_rotate_and_revoke_name_keys_by_id_and_prefix_only(tmp_path):
    settings = Settings(data_dir=tmp_path)
    acme, bob = (cli_api_key(settings, tenant) for tenant in ("acme", "bob"))
    (old,) = listed_keys(settings, "--tenant", "acme")

    rotated = run_cli(settings, "keys", "rotate", old["id"], "--grace", "3600")
    after_rotation = {row["id"]: row for row in listed_keys(settings)}
    (new,) = (row for row in listed_keys(settings, "--tenant", "acme") if row["id"] != old["id"])
    revoked = run_cli(settings, "keys", "revoke", new["id"])
    after_revocation = listed_keys(settings, "--tenant", "acme")

    assert rotated.returncode == revoked.returncode == 0, rotated.stderr + revoked.stderr
    new_key = rotated.stdout.strip()
    assert acme.startswith(old["prefix"] + "_") and new_key.startswith(new["prefix"] + "_")
    assert after_rotation[old["id"]]["status"] == "expiring"
    assert after_rotation[old["id"]]["expires_at"] != "-"
    assert {row["tenant"] for row in after_rotation.values()} == {"acme", "bob"}
    assert f"Revoked {new['id']} ({new['prefix']})" in revoked.stdout
    assert [(row["id"], row["status"]) for row in after_revocation] == [
        (new["id"], "revoked"),
        (old["id"], "expiring"),
    ]
    async with serving(settings) as (_, client, _auth):
        answers = [
            (await client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})).status_code
            for key in (acme, new_key, bob)
        ]
    assert answers == [200, 401, 200]
    listing = run_cli(settings, "keys", "list").stdout
    assert all(key not in listing for key in (acme, new_key, bob))


def test_keys_revoke_and_rotate_refuse_with_one_line(tmp_path):
    settings = Settings(data_dir=tmp_path)
    run_cli(settings, "keys", "create", "--tenant", "acme")
    (key,) = listed_keys(settings)
    run_cli(settings, "keys", "revoke", key["id"])

    unknown = run_cli(settings, "keys", "revoke", "key_nope")
    revoked = run_cli(settings, "keys", "rotate", key["id"])
    negative = run_cli(settings, "keys", "rotate", key["id"], "--grace", "-5")

    assert unknown.returncode == revoked.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == "darkroom: No API key key_nope."
    assert revoked.stderr.strip().splitlines()[-1] == (
        f"darkroom: Key {key['id']} is revoked; only an active key can be rotated."
    )
    assert negative.returncode == 2 and "--grace: must be 0 to" in negative.stderr


async def test_tenants_budget_sets_what_get_usage_reports(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key = cli_api_key(settings, "acme")

    budget = run_cli(settings, "tenants", "budget", "acme", "--usd", "50")
    unknown = run_cli(settings, "tenants", "budget", "nobody", "--usd", "5")

    assert budget.returncode == 0, budget.stderr
    assert budget.stdout.strip() == "Tenant 'acme' may spend $50.00 per calendar month (UTC)."
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines()[-1] == "darkroom: No tenant 'nobody'."
    async with serving(settings) as (_, client, _auth):
        usage = await client.get("/v1/usage", headers={"Authorization": f"Bearer {key}"})
    assert usage.json()["monthly_budget_usd"] == 50
    assert usage.json()["remaining_usd"] == 50
