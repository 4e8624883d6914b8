"""Deterministic sample forms and submissions for the ODK Central stand-in (tests, benchmark, demo).

- ``rental_form()``: the rental data collection form (``rental_survey``): building name, address, an Open
  Location Code, a building photo (attachment), rent, number of units, the landlord's phone, and a
  top-level ``person_details`` repeat (1-6 persons: name, age, sex, relationship, occupation).
- ``nested_form()``: a small form (``household_visits``) with a repeat inside a group
  (``household/member``), a repeat inside that repeat's group (``household/member/phones/phone``) and a
  repeat directly inside a repeat (``visit/observation``), for the parent-link column names.
- ``populate(central)`` and ``populate_nested(central)`` add the same submissions every time for a seed:
  some edited, some reviewed (approved, hasIssues, rejected), a few soft-deleted. Timestamps are fixed
  (January 2026); start the server with ``start_time=DEMO_CLOCK`` for a consistent clock.
"""

from __future__ import annotations

import math
import random
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from testing.fake_central import FakeCentral, Field, FormSpec, Group, NotFoundError, Repeat

SEED = 20260115
RENTAL_FORM_ID = "rental_survey"
NESTED_FORM_ID = "household_visits"
FIRST_SUBMISSION = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
DEMO_CLOCK = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # after every sample timestamp

FIRST_NAMES = (
    "Amina",
    "Brian",
    "Chebet",
    "David",
    "Esther",
    "Faith",
    "George",
    "Hassan",
    "Irene",
    "Joseph",
    "Kevin",
    "Lucy",
    "Maria",
    "Nelson",
    "Olivia",
    "Paolo",
    "Rosa",
    "Samuel",
    "Teresa",
    "Wanjiku",
)
LAST_NAMES = (
    "Otieno",
    "Mwangi",
    "Wanjiru",
    "Kimani",
    "Achieng",
    "Santos",
    "Reyes",
    "Cruz",
    "Garcia",
    "Njoroge",
)
STREETS = (
    "Moi Avenue",
    "Kenyatta Road",
    "Ngong Road",
    "Jogoo Road",
    "Thika Road",
    "Waiyaki Way",
    "Mombasa Road",
)
ESTATES = ("Eastleigh", "Kibera", "Umoja", "Kilimani", "Kawangware", "Buruburu", "Githurai", "Embakasi")
BUILDING_WORDS = ("Court", "Apartments", "Heights", "Plaza", "House", "Flats", "Residence")
RELATIONSHIPS = ("head", "spouse", "child", "parent", "sibling", "relative", "lodger")
OCCUPATIONS = (
    "teacher",
    "trader",
    "driver",
    "student",
    "nurse",
    "mechanic",
    "farmer",
    "tailor",
    "clerk",
    "none",
)
SUBMITTERS = ("amina.otieno", "joseph.mwangi", "grace.wanjiru", "maria.santos")
NOTES = ("roof leaking", "water available", "new tenant", "meter broken", "all well", "rent arrears")


def rental_form() -> FormSpec:
    """The rental survey form; ``person_details`` is its OData table ``Submissions.person_details``."""
    return FormSpec(
        xml_form_id=RENTAL_FORM_ID,
        version="2026011501",
        name="Rental data collection",
        fields=(
            Field("survey_date", "date"),
            Field("building_name"),
            Field("address"),
            Field("address_plus_code"),
            Field("building_image", "binary"),
            Field("rent_amount", "decimal"),
            Field("number_of_units", "int"),
            Field("landlord_phone"),
            Repeat(
                "person_details",
                (
                    Field("name"),
                    Field("age", "int"),
                    Field("sex", "select1"),
                    Field("relationship", "select1"),
                    Field("occupation"),
                ),
            ),
        ),
    )


def nested_form() -> FormSpec:
    """Tables: ``Submissions.household.member`` (parent column ``__Submissions-id``),
    ``Submissions.household.member.phones.phone`` (``__Submissions-household-member-id``),
    ``Submissions.visit`` (``__Submissions-id``) and ``Submissions.visit.observation``
    (``__Submissions-visit-id``)."""
    return FormSpec(
        xml_form_id=NESTED_FORM_ID,
        version="3",
        name="Household visits",
        fields=(
            Field("village"),
            Group(
                "household",
                (
                    Field("head_name"),
                    Repeat(
                        "member",
                        (
                            Field("name"),
                            Field("age", "int"),
                            Group("phones", (Repeat("phone", (Field("number"),)),)),
                        ),
                    ),
                ),
            ),
            Repeat("visit", (Field("visit_date", "date"), Repeat("observation", (Field("note"),)))),
        ),
    )


# --------------------------------------------------------------------------------------------------
# Generated values
# --------------------------------------------------------------------------------------------------

_OLC_ALPHABET = "23456789CFGHJMPQRVWX"


def plus_code(latitude: float, longitude: float) -> str:
    """A 10-digit Open Location Code (``6GCRPR6C+24``) for a point."""
    latitude = min(max(latitude, -90.0), 90.0 - 1e-9)
    longitude = (longitude + 180.0) % 360.0 - 180.0
    lat = math.floor((latitude + 90.0) * 8000)  # the 10-digit code resolves 1/8000 of a degree
    lon = math.floor((longitude + 180.0) * 8000)
    digits = []
    for place in range(4, -1, -1):
        step = 20**place
        digits.append(_OLC_ALPHABET[lat // step % 20])
        digits.append(_OLC_ALPHABET[lon // step % 20])
    code = "".join(digits)
    return f"{code[:8]}+{code[8:]}"


def png_bytes(width: int, height: int, colour: tuple[int, int, int], seed: int = 0) -> bytes:
    """A small valid PNG: a building-ish block of ``colour`` with window dots (deterministic)."""
    rng = random.Random(seed)
    sky = (200, 225, 245)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type 0 for each scanline
        for x in range(width):
            inside = width // 6 <= x < width - width // 6 and y >= height // 4
            window = inside and x % 4 == 1 and y % 4 == 2 and rng.random() < 0.8
            row += bytes((250, 230, 120) if window else colour if inside else sky)
        rows.append(bytes(row))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def instance_id(rng: random.Random) -> str:
    return f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def person(rng: random.Random, relationship: str) -> dict[str, Any]:
    age = rng.randint(25, 80) if relationship in ("head", "spouse", "parent") else rng.randint(0, 60)
    return {
        "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "age": age,
        "sex": rng.choice(("male", "female")),
        "relationship": relationship,
        "occupation": "student" if age < 18 else rng.choice(OCCUPATIONS),
    }


def rental_record(
    rng: random.Random, index: int, *, persons: int | None = None, image: bool = True
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One rental survey: its data and its attachments (the building photo unless ``image`` is False)."""
    count = persons if persons is not None else rng.randint(1, 6)
    people = [person(rng, "head")] + [person(rng, rng.choice(RELATIONSHIPS[1:])) for _ in range(count - 1)]
    latitude = -1.2864 + rng.uniform(-0.12, 0.12)  # Nairobi
    longitude = 36.8172 + rng.uniform(-0.12, 0.12)
    photo = f"building_{index:06d}.png"
    data = {
        "survey_date": (FIRST_SUBMISSION + timedelta(days=index // 40)).date().isoformat(),
        "building_name": f"{rng.choice(LAST_NAMES)} {rng.choice(BUILDING_WORDS)}",
        "address": f"{rng.randint(1, 250)} {rng.choice(STREETS)}, {rng.choice(ESTATES)}, Nairobi",
        "address_plus_code": plus_code(latitude, longitude),
        "building_image": photo if image else None,
        "rent_amount": round(rng.uniform(4_000, 60_000) / 500) * 500 + rng.choice((0, 0, 0, 250.5)),
        "number_of_units": rng.randint(1, 48),
        "landlord_phone": f"+2547{rng.randint(0, 99_999_999):08d}",
        "person_details": people,
    }
    files = {}
    if image:
        colour = (rng.randint(90, 200), rng.randint(60, 160), rng.randint(40, 140))
        files[photo] = png_bytes(24, 16, colour, seed=index)
    return data, files


@dataclass
class SampleRun:
    """What ``populate`` did: instance IDs in submission order, and which were edited, reviewed, deleted."""

    form_id: str
    instance_ids: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    reviewed: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


def _ensure_form(central: FakeCentral, form: FormSpec) -> None:
    try:
        central.tables(form.xml_form_id)
    except NotFoundError:
        central.add_form(form)


def populate(
    central: FakeCentral,
    n: int = 300,
    seed: int = SEED,
    *,
    start: datetime = FIRST_SUBMISSION,
    edit_share: float = 0.08,
    review_share: float = 0.25,
    delete_share: float = 0.02,
) -> SampleRun:
    """Add ``n`` rental surveys (registering the form if needed), then edit, review and soft-delete some
    of them, all at fixed times after their submission."""
    _ensure_form(central, rental_form())
    rng = random.Random(seed)
    run = SampleRun(RENTAL_FORM_ID)
    submitted: dict[str, datetime] = {}
    records: dict[str, dict[str, Any]] = {}
    moment = start
    for index in range(n):
        moment += timedelta(minutes=rng.randint(5, 70))
        data, files = rental_record(rng, index)
        ident = central.add_submission(
            RENTAL_FORM_ID,
            data,
            files,
            submitter=rng.choice(SUBMITTERS),
            device_id=f"collect:{rng.getrandbits(48):012x}",
            submitted_at=moment,
            instance_id=instance_id(rng),
            user_agent="org.odk.collect.android/v2025.2.3",
        )
        run.instance_ids.append(ident)
        submitted[ident] = moment
        records[ident] = data

    for ident in run.instance_ids:
        if rng.random() >= edit_share:
            continue
        data = dict(records[ident])
        data["rent_amount"] = (data["rent_amount"] or 0) + rng.choice((-1000, 500, 1500))
        people = list(data["person_details"])
        if len(people) < 6 and rng.random() < 0.5:
            people.append(person(rng, rng.choice(RELATIONSHIPS[1:])))
        elif len(people) > 1:
            people.pop()
        data["person_details"] = people
        central.edit_submission(
            RENTAL_FORM_ID,
            ident,
            data,
            new_instance_id=instance_id(rng),
            at=submitted[ident] + timedelta(days=2, minutes=rng.randint(0, 600)),
        )
        run.edited.append(ident)

    for ident in run.instance_ids:
        if rng.random() >= review_share:
            continue
        state = rng.choices(("approved", "hasIssues", "rejected"), weights=(0.75, 0.15, 0.10))[0]
        central.set_review_state(
            RENTAL_FORM_ID, ident, state, at=submitted[ident] + timedelta(days=4, minutes=rng.randint(0, 600))
        )
        run.reviewed[ident] = state

    for ident in run.instance_ids:
        if rng.random() < delete_share:
            at = submitted[ident] + timedelta(days=5, minutes=rng.randint(0, 600))
            central.delete_submission(RENTAL_FORM_ID, ident, at=at)
            run.deleted.append(ident)
    return run


def nested_record(rng: random.Random) -> dict[str, Any]:
    members = []
    for _ in range(rng.randint(0, 4)):
        phones = [{"number": f"+2547{rng.randint(0, 99_999_999):08d}"} for _ in range(rng.randint(0, 2))]
        members.append(
            {
                "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "age": rng.randint(1, 85),
                "phones": {"phone": phones},
            }
        )
    visits = []
    for _ in range(rng.randint(0, 3)):
        day = FIRST_SUBMISSION + timedelta(days=rng.randint(0, 20))
        observations = [{"note": rng.choice(NOTES)} for _ in range(rng.randint(0, 3))]
        visits.append({"visit_date": day.date().isoformat(), "observation": observations})
    return {
        "village": rng.choice(ESTATES),
        "household": {"head_name": members[0]["name"] if members else None, "member": members},
        "visit": visits,
    }


def populate_nested(
    central: FakeCentral, n: int = 12, seed: int = SEED, *, start: datetime = FIRST_SUBMISSION
) -> SampleRun:
    """Add ``n`` household visits (registering the form if needed); the first always has two members
    with phones and a visit with observations, so every table has rows."""
    _ensure_form(central, nested_form())
    rng = random.Random(seed + 1)
    run = SampleRun(NESTED_FORM_ID)
    for index in range(n):
        data = nested_record(rng)
        if index == 0:
            data["household"]["member"] = [
                {"name": "Amina Otieno", "age": 41, "phones": {"phone": [{"number": "+254700000001"}]}},
                {"name": "Brian Otieno", "age": 17, "phones": {"phone": [{"number": "+254700000002"}] * 2}},
            ]
            data["household"]["head_name"] = "Amina Otieno"
            data["visit"] = [{"visit_date": "2026-01-06", "observation": [{"note": "all well"}]}]
        ident = central.add_submission(
            NESTED_FORM_ID,
            data,
            submitter=rng.choice(SUBMITTERS),
            submitted_at=start + timedelta(hours=3 * index),
            instance_id=instance_id(rng),
        )
        run.instance_ids.append(ident)
    return run
