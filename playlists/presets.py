"""Ready-made smart playlists on the keys the current model set writes.

Each preset builds Navidrome rules from a few parameters (thresholds, a mood word,
the limit). Keys follow the README's scheme: the Essentia heads
(`nom_mood_happy_msd_musicnn_1__happy`, `nom_danceability_msd_musicnn_1__danceable`,
...), the musicnn backbones' own tags (`nom_msd_musicnn_1__chill`,
`nom_mtt_musicnn_1__slow`, ...), tiers and the mood sets. A preset whose keys no
file in the library carries says which (`missing_keys`): its playlist would be
empty, and Navidrome would not know those fields.

The heads output probabilities (two classes summing to 1), so their thresholds sit
around 0.5-0.8; the backbones' tags are independent sigmoids that rarely pass 0.5,
so their thresholds are lower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from playlists.fields import MOOD_SETS, TIERS, FieldCatalog, namespace_prefix
from playlists.rules import MAX_LIMIT, fields_used

MOOD_WORDS = (
    "happy",
    "sad",
    "relaxed",
    "aggressive",
    "party",
    "danceable",
    "instrumental",
    "voice",
)

# Key suffixes (after "nom_") of the current model set.
HAPPY = "mood_happy_msd_musicnn_1__happy"
SAD = "mood_sad_msd_musicnn_1__sad"
RELAXED = "mood_relaxed_msd_musicnn_1__relaxed"
AGGRESSIVE = "mood_aggressive_msd_musicnn_1__aggressive"
PARTY = "mood_party_msd_musicnn_1__party"
DANCEABLE = "danceability_msd_musicnn_1__danceable"
INSTRUMENTAL = "voice_instrumental_msd_musicnn_1__instrumental"
VOICE = "voice_instrumental_msd_musicnn_1__voice"
FEMALE = "gender_msd_musicnn_1__female"


def msd(label: str) -> str:
    return f"msd_musicnn_1__{label}"


def mtt(label: str) -> str:
    return f"mtt_musicnn_1__{label}"


class PresetError(ValueError):
    """A preset parameter is unknown or out of range."""


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    kind: str  # "score", "int" or "choice"
    default: object
    choices: tuple[str, ...] = ()

    def parse(self, raw: object) -> object:
        if self.kind == "choice":
            if raw not in self.choices:
                raise PresetError(
                    f"{self.name} must be one of {', '.join(self.choices)}, not {raw!r}"
                )
            return raw
        try:
            value = float(raw) if self.kind == "score" else int(str(raw).strip())
        except (TypeError, ValueError):
            kind = "a number from 0 to 1" if self.kind == "score" else "a whole number"
            raise PresetError(f"{self.name} must be {kind}, not {raw!r}") from None
        if self.kind == "score" and not 0 <= value <= 1:
            raise PresetError(f"{self.name} must be from 0 to 1, not {raw!r}")
        if self.kind == "int" and not 1 <= value <= MAX_LIMIT:
            raise PresetError(f"{self.name} must be from 1 to {MAX_LIMIT}, not {raw!r}")
        return value


def score(name: str, label: str, default: float) -> Param:
    return Param(name, label, "score", default)


LIMIT = Param("limit", "at most this many tracks", "int", 100)

Builder = Callable[[dict, Callable[[str], str]], dict]


@dataclass(frozen=True)
class Preset:
    slug: str
    name: str
    description: str
    params: tuple[Param, ...]
    build: Builder

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def values(self, raw: Mapping[str, object] | None = None) -> dict:
        """The parameters: given ones parsed and checked, the rest at their defaults."""
        raw = dict(raw or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise PresetError(
                f"{self.slug} has no parameter {', '.join(unknown)} (it has: {', '.join(known)})"
            )
        return {
            name: param.parse(raw[name]) if name in raw and raw[name] not in ("", None)
            else param.default
            for name, param in known.items()
        }  # fmt: skip

    def rules(self, raw: Mapping[str, object] | None = None) -> dict:
        values = self.values(raw)
        prefix = namespace_prefix()
        body = self.build(values, lambda suffix: prefix + suffix)
        rules = {"name": self.name, "comment": self.description, **body}
        if "limit" in values:
            rules["limit"] = values["limit"]
        return rules

    def keys(self) -> list[str]:
        """The Nomarr keys the preset reads (with its default parameters)."""
        prefix = namespace_prefix()
        return [name for name in fields_used(self.rules()) if name.startswith(prefix)]

    def missing_keys(self, catalog: FieldCatalog) -> list[str]:
        return [key for key in self.keys() if key not in catalog]


def gt(key: str, value: float) -> dict:
    return {"gt": {key: value}}


def lt(key: str, value: float) -> dict:
    return {"lt": {key: value}}


PRESETS: tuple[Preset, ...] = (
    Preset(
        "happy-energetic",
        "Happy and energetic",
        "Happy and danceable, happiest first.",
        (score("happy", "happy above", 0.7), score("energy", "danceable above", 0.6), LIMIT),
        lambda v, k: {
            "all": [gt(k(HAPPY), v["happy"]), gt(k(DANCEABLE), v["energy"])],
            "sort": f"-{k(HAPPY)}",
        },
    ),
    Preset(
        "chill-evening",
        "Chill evening",
        "Relaxed, not aggressive, and tagged chill, chillout or mellow; shuffled.",
        (
            score("relaxed", "relaxed above", 0.6),
            score("aggressive", "aggressive below", 0.3),
            score("chill", "chill/chillout/mellow above", 0.1),
            LIMIT,
        ),
        lambda v, k: {
            "all": [
                gt(k(RELAXED), v["relaxed"]),
                lt(k(AGGRESSIVE), v["aggressive"]),
                {
                    "any": [
                        gt(k(msd("chill")), v["chill"]),
                        gt(k(msd("chillout")), v["chill"]),
                        gt(k(msd("mellow")), v["chill"]),
                    ]
                },
            ],
            "sort": "random",
        },
    ),
    Preset(
        "sad-slow",
        "Sad and slow",
        "Sad, and slow or hardly danceable; saddest first.",
        (
            score("sad", "sad above", 0.6),
            score("slow", "slow above", 0.2),
            score("danceable", "or danceable below", 0.4),
            LIMIT,
        ),
        lambda v, k: {
            "all": [
                gt(k(SAD), v["sad"]),
                {"any": [gt(k(mtt("slow")), v["slow"]), lt(k(DANCEABLE), v["danceable"])]},
            ],
            "sort": f"-{k(SAD)}",
        },
    ),
    Preset(
        "party",
        "Party",
        "Party and danceable, or with party among its mood words; most danceable first.",
        (score("party", "party above", 0.6), score("danceable", "danceable above", 0.6), LIMIT),
        lambda v, k: {
            "any": [
                {"all": [gt(k(PARTY), v["party"]), gt(k(DANCEABLE), v["danceable"])]},
                {"is": {k("mood_regular"): "party"}},
            ],
            "sort": f"-{k(DANCEABLE)}",
        },
    ),
    Preset(
        "focus",
        "Focus: instrumental and calm",
        "Instrumental, relaxed and not aggressive, for working; shuffled.",
        (
            score("instrumental", "instrumental above", 0.7),
            score("relaxed", "relaxed above", 0.5),
            score("aggressive", "aggressive below", 0.3),
            LIMIT,
        ),
        lambda v, k: {
            "all": [
                gt(k(INSTRUMENTAL), v["instrumental"]),
                gt(k(RELAXED), v["relaxed"]),
                lt(k(AGGRESSIVE), v["aggressive"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "workout",
        "Workout",
        "Aggressive and danceable; most aggressive first.",
        (
            score("aggressive", "aggressive above", 0.6),
            score("danceable", "danceable above", 0.6),
            LIMIT,
        ),
        lambda v, k: {
            "all": [gt(k(AGGRESSIVE), v["aggressive"]), gt(k(DANCEABLE), v["danceable"])],
            "sort": f"-{k(AGGRESSIVE)}",
        },
    ),
    Preset(
        "mood",
        "Mood",
        "Tracks whose mood set holds one mood word (strict: high tier only; loose: any "
        "tier); shuffled.",
        (
            Param("mood", "mood word", "choice", "happy", MOOD_WORDS),
            Param("set", "mood set", "choice", "regular", MOOD_SETS),
            LIMIT,
        ),
        lambda v, k: {"all": [{"is": {k(f"mood_{v['set']}"): v["mood"]}}], "sort": "random"},
    ),
    Preset(
        "dance-floor",
        "Dance floor",
        "Danceability in the chosen tier; most danceable first.",
        (Param("tier", "danceable tier", "choice", "high", TIERS[:3]), LIMIT),
        lambda v, k: {
            "all": [{"is": {k(f"{DANCEABLE}__tier"): v["tier"]}}],
            "sort": f"-{k(DANCEABLE)}",
        },
    ),
    Preset(
        "acoustic-mellow",
        "Acoustic and mellow",
        "Tagged acoustic and mellow, not aggressive; shuffled.",
        (
            score("acoustic", "acoustic above", 0.15),
            score("mellow", "mellow above", 0.15),
            score("aggressive", "aggressive below", 0.4),
            LIMIT,
        ),
        lambda v, k: {
            "all": [
                gt(k(msd("acoustic")), v["acoustic"]),
                gt(k(msd("mellow")), v["mellow"]),
                lt(k(AGGRESSIVE), v["aggressive"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "ambient",
        "Ambient soundscapes",
        "Ambient (by either backbone) and instrumental; shuffled.",
        (
            score("ambient", "ambient above", 0.2),
            score("instrumental", "instrumental above", 0.5),
            LIMIT,
        ),
        lambda v, k: {
            "all": [
                {"any": [gt(k(msd("ambient")), v["ambient"]), gt(k(mtt("ambient")), v["ambient"])]},
                gt(k(INSTRUMENTAL), v["instrumental"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "feel-good-pop",
        "Feel-good pop",
        "Tagged pop and happy; happiest first.",
        (score("pop", "pop above", 0.2), score("happy", "happy above", 0.6), LIMIT),
        lambda v, k: {
            "all": [gt(k(msd("pop")), v["pop"]), gt(k(HAPPY), v["happy"])],
            "sort": f"-{k(HAPPY)},title",
        },
    ),
    Preset(
        "female-vocals",
        "Female vocals",
        "Sung, by a female voice; shuffled.",
        (score("voice", "voice above", 0.6), score("female", "female above", 0.6), LIMIT),
        lambda v, k: {
            "all": [gt(k(VOICE), v["voice"]), gt(k(FEMALE), v["female"])],
            "sort": "random",
        },
    ),
    Preset(
        "easy-listening",
        "Easy listening",
        "Tagged easy listening, with neither sad nor aggressive among its mood words "
        "(loose set); shuffled.",
        (score("easy", "easy listening above", 0.1), LIMIT),
        lambda v, k: {
            "all": [
                gt(k(msd("easy_listening")), v["easy"]),
                {"isNot": {k("mood_loose"): "sad"}},
                {"isNot": {k("mood_loose"): "aggressive"}},
            ],
            "sort": "random",
        },
    ),
    Preset(
        "heavy-loud",
        "Heavy and loud",
        "Metal, hard rock or heavy metal, and loud; loudest first.",
        (score("heavy", "metal/hard rock above", 0.2), score("loud", "loud above", 0.2), LIMIT),
        lambda v, k: {
            "all": [
                {
                    "any": [
                        gt(k(msd("metal")), v["heavy"]),
                        gt(k(msd("hard_rock")), v["heavy"]),
                        gt(k(msd("heavy_metal")), v["heavy"]),
                    ]
                },
                gt(k(mtt("loud")), v["loud"]),
            ],
            "sort": f"-{k(mtt('loud'))}",
        },
    ),
    Preset(
        "quiet-piano",
        "Quiet piano",
        "Piano, soft or quiet, without vocals; shuffled.",
        (score("piano", "piano above", 0.2), score("soft", "soft/quiet above", 0.15), LIMIT),
        lambda v, k: {
            "all": [
                gt(k(mtt("piano")), v["piano"]),
                {"any": [gt(k(mtt("soft")), v["soft"]), gt(k(mtt("quiet")), v["soft"])]},
                {"notContains": {k("mood_loose"): "voice"}},
            ],
            "sort": "random",
        },
    ),
)

BY_SLUG = {preset.slug: preset for preset in PRESETS}


def get(slug: str) -> Preset:
    try:
        return BY_SLUG[slug]
    except KeyError:
        raise PresetError(
            f"no template {slug!r}; there are: {', '.join(sorted(BY_SLUG))}"
        ) from None
