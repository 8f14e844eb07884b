"""Runtime settings, read once from the environment into one frozen dataclass.

Secrets (the pseudonymisation key, the session key) come only from the environment, never from
the repository. ``make run`` writes a local demo secret to ``.env.local`` (git-ignored) and says so.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from errors import RecsightError

__all__ = ["Settings", "load_settings", "SESSION_KEY_CONTEXT", "SETTINGS_KEY", "CURRENCY_CODES", "DEFAULT_CURRENCY"]

# Domain separation: the session-signing key derived from RECSIGHT_SECRET is
# HMAC-SHA256(key=RECSIGHT_SECRET, msg=SESSION_KEY_CONTEXT), hex, so the pseudonymisation key
# itself never signs cookies and one leaked cookie key reveals nothing about pseudonyms.
SESSION_KEY_CONTEXT = b"recsight/session-cookie-key/v1"

# Where an app keeps its Settings in its Flask config: ``app.create_app`` puts them there and the
# pages read them back per request (``pages._parts.current_settings``), so several apps (tests)
# can live in one process and no page imports the app.
SETTINGS_KEY = "RECSIGHT_SETTINGS"

# The currency the shop's prices and revenue are in (``RECSIGHT_CURRENCY``): the data never says,
# so the pages and reports state it (:mod:`dashboard.money`). The ISO 4217 codes of circulating
# currencies; funds, metals and test codes (XAU, XTS...) are no shop's prices and are refused.
_ISO_4217 = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD
XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCY_CODES = frozenset(_ISO_4217.split())
DEFAULT_CURRENCY = "EUR"  # unless set; Online Retail (UK) is in GBP, the REES46 sample in USD


@dataclass(frozen=True)
class Settings:
    """Where the shop's data and models live, and how the app is served."""

    db_path: Path = Path("data/shop.duckdb")
    models_dir: Path = Path("data/models")
    secret: str = field(default="", repr=False)
    users_file: Path = Path("data/users.json")
    audit_db: Path = Path("data/audit.duckdb")
    host: str = "127.0.0.1"
    port: int = 8050
    k_anonymity: int = 10
    session_secret: str = field(default="", repr=False)
    # Sign-in sessions (service.sessions): how long a signed-in browser may sit unused before it
    # must sign in again, where the server keeps its live sessions (None: sessions.json beside the
    # audit log, so a sign-out survives a restart), and whether the app is served over HTTPS
    # (then the cookie is Secure and named __Host-..., and browsers are told to keep to HTTPS).
    idle_timeout_s: int = 30 * 60
    sessions_path: Path | None = None
    tls: bool = False
    # How often a server folds the live segment into the shop file (workflows.compactor), in
    # minutes; 0: never (``cli.py compact`` by hand). Started only by ``serve``, not by create_app,
    # so tests and WSGI imports do not compact behind anyone's back.
    compact_minutes: float = 10.0
    # The ISO 4217 code of the shop's prices and revenue (``RECSIGHT_CURRENCY``), shown with every
    # amount on the pages, their CSV headers and the reports.
    currency: str = DEFAULT_CURRENCY

    @property
    def sessions_file(self) -> Path:
        """The server's list of live sign-in sessions (``RECSIGHT_SESSIONS``)."""
        return self.sessions_path or Path(self.audit_db).with_name("sessions.json")

    def require_secret(self) -> str:
        """The pseudonymisation key, or a clear error saying how to set it."""
        if not self.secret:
            raise RecsightError(
                "RECSIGHT_SECRET is not set: export a long random value "
                "(make run creates one for the demo in .env.local)"
            )
        return self.secret

    def require_session_key(self) -> str:
        """The key that signs sign-in cookies: ``RECSIGHT_SESSION_SECRET`` when set, else derived
        from ``RECSIGHT_SECRET`` (see ``SESSION_KEY_CONTEXT``); never a constant in the code."""
        if self.session_secret:
            return self.session_secret
        if self.secret:
            return hmac.new(self.secret.encode("utf-8"), SESSION_KEY_CONTEXT, hashlib.sha256).hexdigest()
        raise RecsightError(
            "neither RECSIGHT_SESSION_SECRET nor RECSIGHT_SECRET is set: export a long random value "
            "(make run creates one for the demo in .env.local)"
        )

    def with_overrides(self, **changes) -> Settings:
        """A copy with command-line overrides applied (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``RECSIGHT_*`` environment variables."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    try:
        port = int(env.get("RECSIGHT_PORT", defaults.port))
        k_anon = int(env.get("RECSIGHT_K_ANONYMITY", defaults.k_anonymity))
    except ValueError as exc:
        raise RecsightError(f"bad number in RECSIGHT_PORT or RECSIGHT_K_ANONYMITY: {exc}") from None
    idle_minutes, tls = _idle_minutes(env, defaults), _flag(env, "RECSIGHT_TLS", defaults.tls)
    compact_minutes = _compact_minutes(env, defaults)
    return Settings(
        db_path=Path(env.get("RECSIGHT_DB", defaults.db_path)),
        models_dir=Path(env.get("RECSIGHT_MODELS", defaults.models_dir)),
        secret=env.get("RECSIGHT_SECRET", ""),
        users_file=Path(env.get("RECSIGHT_USERS", defaults.users_file)),
        audit_db=Path(env.get("RECSIGHT_AUDIT_DB", defaults.audit_db)),
        host=env.get("RECSIGHT_HOST", defaults.host),
        port=port,
        k_anonymity=k_anon,
        session_secret=env.get("RECSIGHT_SESSION_SECRET", ""),
        idle_timeout_s=idle_minutes * 60,
        sessions_path=Path(env["RECSIGHT_SESSIONS"]) if env.get("RECSIGHT_SESSIONS") else None,
        tls=tls,
        compact_minutes=compact_minutes,
        currency=_currency(env, defaults),
    )


def _currency(env: Mapping[str, str], defaults: Settings) -> str:
    """``RECSIGHT_CURRENCY``: an ISO 4217 code (any case: "gbp" is GBP); anything else is refused at
    startup, so a typo never shows as a wrong currency on every page."""
    text = env.get("RECSIGHT_CURRENCY", "").strip()
    if not text:
        return defaults.currency
    code = text.upper()
    if code not in CURRENCY_CODES:
        raise RecsightError(f"RECSIGHT_CURRENCY must be an ISO 4217 currency code such as EUR, GBP, USD or CNY "
                            f"(not {text[:20]!r})")
    return code


def _compact_minutes(env: Mapping[str, str], defaults: Settings) -> float:
    """``RECSIGHT_COMPACT_MINUTES``: a number of minutes, 0 or more (0: the server never compacts)."""
    text = env.get("RECSIGHT_COMPACT_MINUTES", "").strip()
    if not text:
        return defaults.compact_minutes
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes >= 0 or minutes == float("inf"):
        raise RecsightError(f"RECSIGHT_COMPACT_MINUTES must be a number of minutes, 0 or more (not {text!r})")
    return minutes


def _idle_minutes(env: Mapping[str, str], defaults: Settings) -> int:
    """``RECSIGHT_IDLE_MINUTES``: whole minutes, at least one (0 would sign everyone out at once)."""
    text = env.get("RECSIGHT_IDLE_MINUTES", str(defaults.idle_timeout_s // 60))
    if not text.strip().isdigit() or int(text) < 1:
        raise RecsightError(f"RECSIGHT_IDLE_MINUTES must be a whole number of minutes, 1 or more (not {text!r})")
    return int(text)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off; anything else is a clear error."""
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise RecsightError(f"{name} must be 1 or 0 (true/false, yes/no), not {text!r}")
