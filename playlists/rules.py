"""Smart-playlist rules: Navidrome's `.nsp` criteria, validated and run on the library.

The rules are the JSON Navidrome reads from a `.nsp` file
(https://www.navidrome.org/docs/usage/features/smart-playlists/):

    {"name": ..., "comment": ..., "public": false,
     "all": [ {"gt": {"nom_mood_happy_msd_musicnn_1__happy": 0.7}},
              {"any": [ {"contains": {"nom_mood_regular": "party"}}, ... ]} ],
     "sort": "-nom_mood_happy_msd_musicnn_1__happy,title", "order": "asc", "limit": 50}

`validate` accepts exactly one of `all`/`any` at the top, groups nested to any depth,
and the operators is, isNot, contains, notContains, startsWith, endsWith, gt, lt.
`inTheRange` is refused: Navidrome v0.63 rejects it on tags; `gt` and `lt` inside
`all` say the same. Scores take JSON numbers only.

`preview` evaluates the rules on the library database with Navidrome's semantics
(model/criteria in Navidrome's source): a tag condition holds if any of the file's
values matches (`exists (... json_tree(tags) ... where value ...)`); `isNot` and
`notContains` hold if no value matches (`not exists`); scores compare as numbers
(`CAST(value AS REAL)`); contains/startsWith/endsWith are LIKE patterns, so
case-insensitive. Conditions become Exists subqueries over TagValue, so the
database does the work, never a Python loop over the library.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Lower

from library.models import LibraryFile, TagValue
from playlists.fields import Field, FieldCatalog, Kind
from tagging.keys import TIERS

#: Navidrome's operator names (it lowercases what it reads) -> the spelling written.
OPERATORS = {
    name.lower(): name
    for name in ("is", "isNot", "contains", "notContains", "startsWith", "endsWith", "gt", "lt")
}
NEGATIONS = {"isNot": "is", "notContains": "contains"}
TEXT_OPERATORS = {"contains", "notContains", "startsWith", "endsWith"}
NUMBER_OPERATORS = {"gt", "lt"}
OTHER_NAVIDROME_OPERATORS = {
    "before",
    "after",
    "inthelast",
    "notinthelast",
    "inplaylist",
    "notinplaylist",
    "ismissing",
    "ispresent",
}
GROUPS = ("all", "any")
TOP_KEYS = {"name", "comment", "public", "all", "any", "sort", "order", "limit"}
MAX_LIMIT = 100_000
MAX_DEPTH = 10


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
    sort = data.get("sort")
    if sort not in (None, ""):
        result["sort"] = _sort(sort, catalog, errors)
    order = data.get("order")
    if order not in (None, ""):
        if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
            errors.append(f"'order' must be 'asc' or 'desc', not {order!r}")
        else:
            result["order"] = order.lower()
    limit = data.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            errors.append(f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
        else:
            result["limit"] = limit
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
    if lowered == "intherange":
        errors.append(
            f"{path}: inTheRange is not supported (Navidrome v0.63 rejects it on tags); "
            'use gt and lt inside "all" instead'
        )
        return None
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
    problem = _check_operand(op, f, operand)
    if problem:
        errors.append(f"{path}: {problem}")
        return None
    return {op: {f.name: operand}}


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


def _lookup(op: str, f: Field, operand) -> dict:
    target = "number" if f.kind is Kind.SCORE else ("value" if f.tag_key else f.column)
    if op == "is":
        return {target: operand}
    if op == "gt":
        return {f"{target}__gt": operand}
    if op == "lt":
        return {f"{target}__lt": operand}
    if op == "contains":
        return {f"{target}__icontains": operand}
    if op == "startsWith":
        return {f"{target}__istartswith": operand}
    if op == "endsWith":
        return {f"{target}__iendswith": operand}
    raise AssertionError(op)  # pragma: no cover - validate() let only these through


def _condition_q(op: str, f: Field, operand) -> Q:
    positive = NEGATIONS.get(op, op)
    lookup = _lookup(positive, f, operand)
    if f.tag_key:
        match = Exists(TagValue.objects.filter(file=OuterRef("pk"), key=f.tag_key, **lookup))
        return ~Q(match) if op in NEGATIONS else Q(match)
    if op in NEGATIONS:
        # SQL's `column <> x` / NOT LIKE: an empty (NULL) column matches neither way.
        return Q(**{f"{f.column}__isnull": False}) & ~Q(**lookup)
    return Q(**lookup)


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


def ordered(rules: dict, catalog: FieldCatalog, files: QuerySet[LibraryFile] | None = None):
    """files (default: the matching ones) in the rules' sort order, limited.

    Navidrome sorts by title when no sort is given; `order: desc` reverses every
    sort field. Sorting by a tag uses the file's first value (as a number for scores).
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
        f = catalog.get(name)
        if f.tag_key:
            alias = f"_sort{index}"
            value = (
                TagValue.objects.filter(file=OuterRef("pk"), key=f.tag_key)
                .order_by("id")
                .values("number" if f.kind is Kind.SCORE else "value")[:1]
            )
            files = files.annotate(**{alias: Subquery(value)})
            expr = F(alias)
        else:
            expr = Lower(f.column) if f.kind is Kind.TEXT else F(f.column)
        terms.append(expr.desc(nulls_last=True) if desc else expr.asc(nulls_last=True))
    if "?" not in terms:
        terms.append("path")
    files = files.order_by(*terms)
    if rules.get("limit"):
        files = files[: rules["limit"]]
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
    limit = rules.get("limit")
    selected = min(matched, limit) if limit else matched
    files = matching(rules, catalog).select_related("root")
    tracks = list(ordered(rules, catalog, files)[: min(sample, selected)])
    return Preview(matched=matched, selected=selected, tracks=tracks, limit=limit)


def selected_files(rules: dict, catalog: FieldCatalog) -> list[LibraryFile]:
    """Every file the playlist holds, in order (for M3U export and Subsonic push)."""
    return list(ordered(rules, catalog, matching(rules, catalog).select_related("root")))
