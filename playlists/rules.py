"""Smart-playlist rules: Navidrome's `.nsp` criteria, validated and run on the library.

The rules are the JSON Navidrome reads from a `.nsp` file
(https://www.navidrome.org/docs/usage/features/smart-playlists/):

    {"name": ..., "comment": ..., "public": false,
     "all": [ {"gt": {"nom_mood_happy_msd_musicnn_1__happy": 0.7}},
              {"any": [ {"contains": {"nom_mood_regular": "party"}}, ... ]} ],
     "sort": "-nom_mood_happy_msd_musicnn_1__happy,title", "order": "asc", "limit": 50}

`validate` accepts exactly one of `all`/`any` at the top, groups nested to any depth,
and the operators is, isNot, contains, notContains, startsWith, endsWith, gt, lt,
inTheRange (on year and duration: Navidrome refuses it on tags, which hold several
values), isMissing and isPresent (on tags and album; Navidrome 0.62 or later); at the
top also limitPercent (0.61+), offset, refreshDelay (read by Navidrome after 0.63;
older ones ignore it) and public. Scores take JSON numbers only, and compare as
numbers from Navidrome 0.56 on (before, every gt/lt on a score compared text).

`preview` evaluates the rules on the library database with Navidrome's semantics
(model/criteria and persistence/criteria_sql.go in Navidrome's source): a tag
condition holds if any of the file's values matches (`exists (... json_tree(tags)
... where value ...)`); `isNot` and `notContains` hold if no value matches (`not
exists`); scores compare as numbers (`CAST(value AS REAL)`); contains/startsWith/
endsWith are SQL LIKE patterns built without escaping, so `_` and `%` in the value
are wildcards, and case-insensitive for ASCII. artist and albumartist are
participants: the artist values split at Navidrome's separators (" / ", " feat. ",
...), the album artists falling back to the artists when a file names none. Sorting
by a tag takes its first value, a missing one as "" (0 for a score: last when sorting
highest first). A limit (or limitPercent of the matches) applies after the offset.
Conditions become Exists subqueries over TagValue, so the database does the work,
never a Python loop over the library.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from django.db.models import (
    BooleanField,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Coalesce, Concat, Lower, Replace, StrIndex
from django.db.models.lookups import GreaterThan

from library.models import LibraryFile, TagValue
from playlists.fields import Field, FieldCatalog, Kind
from tagging.keys import TIERS

#: Navidrome's operator names (it lowercases what it reads) -> the spelling written.
OPERATORS = {
    name.lower(): name
    for name in (
        "is",
        "isNot",
        "contains",
        "notContains",
        "startsWith",
        "endsWith",
        "gt",
        "lt",
        "inTheRange",
        "isMissing",
        "isPresent",
    )
}
NEGATIONS = {"isNot": "is", "notContains": "contains"}
TEXT_OPERATORS = {"contains", "notContains", "startsWith", "endsWith"}
NUMBER_OPERATORS = {"gt", "lt"}
PRESENCE_OPERATORS = {"isMissing", "isPresent"}
OTHER_NAVIDROME_OPERATORS = {
    "before",
    "after",
    "inthelast",
    "notinthelast",
    "inplaylist",
    "notinplaylist",
}
GROUPS = ("all", "any")
#: The keys Navidrome reads besides the groups: lowercased -> the spelling written.
#: Go matches the criteria's JSON keys ignoring case; name, comment and public it
#: reads as spelled.
CRITERIA_KEYS = {
    key.lower(): key for key in ("sort", "order", "limit", "limitPercent", "offset", "refreshDelay")
}
TOP_KEYS = {"name", "comment", "public", "all", "any", *CRITERIA_KEYS}
MAX_LIMIT = 100_000
MAX_OFFSET = 1_000_000
MAX_DEPTH = 10
#: Navidrome's (Go's) durations, plus d and w: "30m", "1h30m", "2d", "1w".
DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d|w))+|0")
#: Fields that are columns in Navidrome and may be missing there (criteria/fields.go:
#: Nullable), among those the library knows.
NULLABLE_COLUMNS = {"album"}


class RuleError(ValueError):
    """The rules are not valid; `errors` says every problem found, one per line."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


# --- validation ------------------------------------------------------------------


def validate(data: object, catalog: FieldCatalog) -> dict:
    """The rules, checked and normalised (operator spellings, lowercase fields), or
    RuleError listing every problem."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise RuleError(['the rules must be a JSON object like {"all": [...]}'])
    result: dict = {}
    for key in data:
        if not isinstance(key, str) or key.lower() not in TOP_KEYS:
            errors.append(
                f"unknown key {key!r} at the top level (allowed: {', '.join(sorted(TOP_KEYS))})"
            )
    groups = [key for key in data if isinstance(key, str) and key.lower() in GROUPS]
    if len(groups) != 1:
        errors.append(
            "the top level needs exactly one of 'all' or 'any' "
            f"(found {', '.join(map(repr, groups)) if groups else 'neither'}); "
            "nest a group inside it to mix the two"
        )
    else:
        group = groups[0].lower()
        result[group] = _group(data[groups[0]], group, catalog, errors, depth=1)

    name = data.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            errors.append("'name' must be a non-empty string")
        else:
            result["name"] = name.strip()
    comment = data.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            errors.append("'comment' must be a string")
        else:
            result["comment"] = comment
    public = data.get("public")
    if public is not None:
        if not isinstance(public, bool):
            errors.append("'public' must be true or false")
        else:
            result["public"] = public
    criteria = {
        CRITERIA_KEYS[key.lower()]: value
        for key, value in data.items()
        if isinstance(key, str) and key.lower() in CRITERIA_KEYS
    }
    sort = criteria.get("sort")
    if sort not in (None, ""):
        result["sort"] = _sort(sort, catalog, errors)
    order = criteria.get("order")
    if order not in (None, ""):
        if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
            errors.append(f"'order' must be 'asc' or 'desc', not {order!r}")
        else:
            result["order"] = order.lower()
    for key, low, high in (
        ("limit", 1, MAX_LIMIT),
        ("limitPercent", 1, 100),
        ("offset", 0, MAX_OFFSET),
    ):
        value = criteria.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors.append(f"'{key}' must be a whole number from {low} to {high}, not {value!r}")
        else:
            result[key] = value
    delay = criteria.get("refreshDelay")
    if delay not in (None, ""):
        if not isinstance(delay, str) or not DURATION.fullmatch(delay.strip()):
            errors.append(
                f'\'refreshDelay\' must be a duration such as "30m", "6h" or "1d", not {delay!r}'
            )
        else:
            result["refreshDelay"] = delay.strip()
    if errors:
        raise RuleError(errors)
    return result


def _group(items: object, where: str, catalog: FieldCatalog, errors: list[str], depth: int):
    if depth > MAX_DEPTH:
        errors.append(f"{where}: groups nested deeper than {MAX_DEPTH} levels")
        return []
    if not isinstance(items, list) or not items:
        errors.append(f"{where}: must be a non-empty list of conditions")
        return []
    result = []
    for index, item in enumerate(items):
        path = f"{where}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            errors.append(
                f"{path}: each condition is an object with one operator, "
                'like {"gt": {"field": 0.5}}'
            )
            continue
        ((key, value),) = item.items()
        lowered = key.lower() if isinstance(key, str) else ""
        if lowered in GROUPS:
            inner = _group(value, f"{path}.{lowered}", catalog, errors, depth + 1)
            result.append({lowered: inner})
            continue
        cond = _condition(path, lowered, key, value, catalog, errors)
        if cond is not None:
            result.append(cond)
    return result


def _condition(path, lowered, key, value, catalog, errors) -> dict | None:
    if lowered in OTHER_NAVIDROME_OPERATORS:
        errors.append(f"{path}: operator {key!r} is not supported here (it needs play history)")
        return None
    op = OPERATORS.get(lowered)
    if op is None:
        errors.append(
            f"{path}: unknown operator {key!r} (allowed: {', '.join(OPERATORS.values())})"
        )
        return None
    if not isinstance(value, dict) or len(value) != 1:
        errors.append(
            f'{path}: {op} takes one field and its value, like {{"{op}": {{"field": ...}}}}'
        )
        return None
    ((name, operand),) = value.items()
    f = catalog.get(name)
    if f is None:
        errors.append(f"{path}: {_unknown_field(name, catalog)}")
        return None
    if op in PRESENCE_OPERATORS:
        operand = _boolean(operand)
    problem = _check_operand(op, f, operand)
    if problem:
        errors.append(f"{path}: {problem}")
        return None
    return {op: {f.name: operand}}


def _boolean(value: object) -> object:
    """A truth value as Navidrome reads one (criteria.ToBool): true/false, "true"/"false"
    (and the other strconv.ParseBool spellings), 1 or 0; anything else unchanged."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
    if _is_number(value) and value in (0, 1):
        return bool(value)
    return value


def _unknown_field(name: object, catalog: FieldCatalog) -> str:
    if not isinstance(name, str) or not name:
        return "the field name must be a non-empty string"
    close = difflib.get_close_matches(name.lower(), catalog.names(), n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown field {name!r}: not one of Navidrome's fields here, and no file in the "
        f"library has that tag{hint}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_operand(op: str, f: Field, operand: object) -> str | None:
    what = "a score" if f.kind is Kind.SCORE else f"a {'number' if f.kind.numeric else 'text'}"
    if op in PRESENCE_OPERATORS:
        if not f.tag_key and f.name not in NULLABLE_COLUMNS:
            return (
                f"{op} works on tags and on album (Navidrome 0.62 or later); {f.name} is "
                "always there in Navidrome"
            )
        if not isinstance(operand, bool):
            return f"{op} takes true or false, not {operand!r}"
        return None
    if op == "inTheRange":
        if f.tag_key:
            return (
                f"Navidrome refuses inTheRange on tags such as {f.name} (a tag holds several "
                'values, each bound could hold for another one); use gt and lt inside "all"'
            )
        if not f.kind.numeric:
            return f"inTheRange compares numbers, but {f.name} is text"
        if (
            not isinstance(operand, list)
            or len(operand) != 2
            or not all(_is_number(bound) for bound in operand)
        ):
            return f"inTheRange on {f.name} takes [from, to], two JSON numbers, not {operand!r}"
        if operand[0] > operand[1]:
            return f"inTheRange on {f.name}: {operand[0]} is above {operand[1]}, nothing matches"
        return None
    if op in NUMBER_OPERATORS:
        if not f.kind.numeric:
            return f"{op} compares numbers, but {f.name} is text; use is, contains or startsWith"
        if not _is_number(operand):
            return f"{f.name} is {what}: {op} needs a JSON number such as 0.7, not {operand!r}"
        return None
    if op in TEXT_OPERATORS:
        if f.kind.numeric:
            return f"{op} matches text, but {f.name} is {what}; use gt or lt"
        if not isinstance(operand, str) or not operand:
            return f"{op} needs a non-empty string, not {operand!r}"
        return None
    # is / isNot
    if f.kind.numeric:
        if not _is_number(operand):
            return f"{f.name} is {what}: {op} needs a JSON number, not {operand!r}"
        return None
    if not isinstance(operand, str):
        return f"{op} on {f.name} needs a string, not {operand!r}"
    if f.is_tier and operand not in TIERS:
        return f"{f.name} is a tier: {op} needs one of {', '.join(TIERS)}, not {operand!r}"
    return None


def _sort(sort: object, catalog: FieldCatalog, errors: list[str]) -> str:
    if not isinstance(sort, str):
        errors.append(f"'sort' must be a string like \"-year,title\", not {sort!r}")
        return ""
    parts = []
    for raw in sort.split(","):
        part = raw.strip()
        if not part:
            continue
        sign = ""
        if part[0] in "+-":
            sign, part = ("-" if part[0] == "-" else ""), part[1:].strip()
        name = part.lower()
        if name != "random" and name not in catalog:
            errors.append(f"sort: {_unknown_field(part, catalog)}")
            continue
        parts.append(sign + name)
    if not parts:
        errors.append("'sort' names no field")
    return ",".join(parts)


def fields_used(rules: dict) -> list[str]:
    """Every field named in the conditions and the sort, in order of appearance."""
    found: list[str] = []

    def walk(items):
        for item in items:
            ((key, value),) = item.items()
            if key in GROUPS:
                walk(value)
            else:
                for name in value:
                    if name not in found:
                        found.append(name)

    for group in GROUPS:
        if group in rules:
            walk(rules[group])
    for part in (rules.get("sort") or "").split(","):
        name = part.strip().lstrip("+-")
        if name and name != "random" and name not in found:
            found.append(name)
    return found


# --- the library query -----------------------------------------------------------


class Like(Func):
    """`lhs LIKE pattern` as Navidrome runs it on SQLite: no escape character, so `_`
    and `%` in a rule's value are wildcards; case-insensitive for ASCII letters
    (ILIKE on PostgreSQL, with no escape character either)."""

    arg_joiner = " LIKE "
    template = "(%(expressions)s)"
    output_field = BooleanField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, arg_joiner=" ILIKE ", template="(%(expressions)s ESCAPE '')"
        )


#: How Navidrome splits one artist value into participants (resources/mappings.yaml:
#: artists.split), and the character the preview joins the pieces with.
ARTIST_SEPARATORS = (" / ", " feat. ", " feat ", " ft. ", " ft ", "; ")
PIECE = "\x1f"
ROLES = {"artist": "artist", "albumartist": "albumartist"}

PATTERNS = {"contains": "%{}%", "startsWith": "{}%", "endsWith": "%{}"}


def _pieces(expr):
    """A participant value as PIECE + name + PIECE + name ... + PIECE."""
    for separator in ARTIST_SEPARATORS:
        expr = Replace(expr, Value(separator), Value(PIECE))
    return Concat(Value(PIECE), expr, Value(PIECE), output_field=TextField())


def _role_match(op: str, operand: str) -> Q:
    """Positive op on a participant's name, over the pieces of a TagValue's value."""
    pieces = _pieces(F("value"))
    if op == "is":
        return Q(GreaterThan(StrIndex(pieces, Value(PIECE + operand + PIECE)), 0))  # like "="
    pattern = {
        "contains": f"%{operand}%",
        "startsWith": f"%{PIECE}{operand}%",
        "endsWith": f"%{operand}{PIECE}%",
    }[op]
    return Q(Like(pieces, Value(pattern)))


def _values(key: str):
    return TagValue.objects.filter(file=OuterRef("pk"), key=key)


def _role_exists(f: Field, match: Q | None) -> Q:
    """Whether the file has a participant of f's role (matching match): album artists
    fall back to the artists on files that name none, as Navidrome's scanner does."""
    artists = _values("artist")
    artist = Exists(artists.filter(match) if match is not None else artists)
    if f.tag_key != "albumartist":
        return Q(artist) if match is not None else Q(pk__isnull=False)  # "[Unknown Artist]"
    albumartists = _values("albumartist")
    own = Exists(albumartists.filter(match) if match is not None else albumartists)
    if match is None:
        return Q(pk__isnull=False)
    return Q(own) | (~Q(Exists(albumartists)) & Q(artist))


def _value_match(op: str, f: Field, operand) -> Q:
    """Positive op on one value (a TagValue row's value or number, or a column)."""
    target = "number" if f.kind is Kind.SCORE else ("value" if f.tag_key else f.column)
    if op == "is":
        return Q(**{target: operand})
    if op == "gt":
        return Q(**{f"{target}__gt": operand})
    if op == "lt":
        return Q(**{f"{target}__lt": operand})
    if op == "inTheRange":
        return Q(**{f"{target}__gte": operand[0], f"{target}__lte": operand[1]})
    if op in PATTERNS:
        return Q(Like(F(target), Value(PATTERNS[op].format(operand))))
    raise AssertionError(op)  # pragma: no cover - validate() let only these through


def _condition_q(op: str, f: Field, operand) -> Q:
    if op in PRESENCE_OPERATORS:
        absent = (op == "isMissing") == operand
        if f.tag_key in ROLES:
            present = _role_exists(f, None)
        elif f.tag_key:
            present = Q(Exists(_values(f.tag_key)))
        else:  # a nullable text column: NULL or "" is missing
            present = Q(**{f"{f.column}__isnull": False}) & ~Q(**{f.column: ""})
        return ~present if absent else present
    positive = NEGATIONS.get(op, op)
    if f.tag_key in ROLES:
        match = _role_exists(f, _role_match(positive, operand))
        return ~match if op in NEGATIONS else match
    lookup = _value_match(positive, f, operand)
    if f.tag_key:
        match = Q(Exists(_values(f.tag_key).filter(lookup)))
        return ~match if op in NEGATIONS else match
    if op in NEGATIONS:
        # SQL's `column <> x` / NOT LIKE: an empty (NULL) column matches neither way.
        return Q(**{f"{f.column}__isnull": False}) & ~lookup
    return lookup


def _group_q(items: list, group: str, catalog: FieldCatalog) -> Q:
    q = Q()
    first = True
    for item in items:
        ((key, value),) = item.items()
        if key in GROUPS:
            part = _group_q(value, key, catalog)
        else:
            ((name, operand),) = value.items()
            part = _condition_q(key, catalog.get(name), operand)
        if first:
            q, first = part, False
        elif group == "all":
            q &= part
        else:
            q |= part
    return q


def matching(rules: dict, catalog: FieldCatalog) -> QuerySet[LibraryFile]:
    """The library files the (validated) rules select, unordered and unlimited."""
    group = "all" if "all" in rules else "any"
    return LibraryFile.objects.filter(_group_q(rules[group], group, catalog))


def effective_limit(rules: dict, matched: int) -> int | None:
    """Navidrome's limit: `limit`, else `limitPercent` of the matches (at least 1)."""
    if rules.get("limit"):
        return rules["limit"]
    percent = rules.get("limitPercent")
    if percent and matched > 0:
        return max(1, matched * percent // 100)
    return None


def _sort_expr(f: Field, index: int, files: QuerySet[LibraryFile]):
    """(files annotated as needed, the expression to sort f by), as Navidrome sorts:
    a tag by its first value, missing as "" (a score as a number, missing as 0)."""
    if f.tag_key:
        alias = f"_sort{index}"
        score = f.kind is Kind.SCORE
        value = _values(f.tag_key).order_by("id").values("number" if score else "value")[:1]
        missing = Value(0.0) if score else Value("")
        output = FloatField() if score else TextField()
        files = files.annotate(**{alias: Coalesce(Subquery(value), missing, output_field=output)})
        return files, F(alias)
    if f.kind is Kind.TEXT:
        return files, Lower(Coalesce(F(f.column), Value("")))
    return files, Coalesce(F(f.column), Value(0), output_field=FloatField())


def ordered(
    rules: dict,
    catalog: FieldCatalog,
    files: QuerySet[LibraryFile] | None = None,
    matched: int | None = None,
):
    """files (default: the matching ones) in the rules' sort order, offset and limited
    (matched: how many match, for limitPercent; counted when not given).

    Navidrome sorts by title when no sort is given; `order: desc` reverses every
    sort field; the offset applies only with a limit, as in Navidrome.
    """
    files = matching(rules, catalog) if files is None else files
    descending_all = rules.get("order") == "desc"
    terms = []
    for index, part in enumerate((rules.get("sort") or "title").split(",")):
        desc = part.startswith("-")
        name = part.lstrip("+-")
        if name == "random":
            terms.append("?")
            continue
        if descending_all:
            desc = not desc
        files, expr = _sort_expr(catalog.get(name), index, files)
        terms.append(expr.desc() if desc else expr.asc())
    if "?" not in terms:
        terms.append("path")
    files = files.order_by(*terms)
    if rules.get("limitPercent") and not rules.get("limit") and matched is None:
        matched = matching(rules, catalog).count()
    limit = effective_limit(rules, matched or 0)
    if limit:
        offset = rules.get("offset") or 0
        files = files[offset : offset + limit]
    return files


@dataclass
class Preview:
    """What a playlist would hold: how many files match, how many it keeps, a sample."""

    matched: int
    selected: int
    tracks: list[LibraryFile] = field(default_factory=list)
    limit: int | None = None


def preview(rules: dict, catalog: FieldCatalog, sample: int = 20) -> Preview:
    matched = matching(rules, catalog).count()
    limit = effective_limit(rules, matched)
    selected = max(0, min(matched - (rules.get("offset") or 0), limit)) if limit else matched
    files = matching(rules, catalog).select_related("root")
    tracks = list(ordered(rules, catalog, files, matched=matched)[: min(sample, selected)])
    return Preview(matched=matched, selected=selected, tracks=tracks, limit=limit)


def selected_files(rules: dict, catalog: FieldCatalog) -> list[LibraryFile]:
    """Every file the playlist holds, in order (for M3U export and Subsonic push)."""
    return list(ordered(rules, catalog, matching(rules, catalog).select_related("root")))
