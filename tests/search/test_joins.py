"""Inferred join keys and completion of a table set along references."""

from __future__ import annotations

from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.search.joins import inferred_references, shared_key_links
from dbmeta_app.search.retrieval import (
    RetrievalWeights,
    SchemaGraph,
    Signals,
    complete_references,
    select_tables,
)


def _t(name: str, *columns: tuple[str, str], schema: str = "omop") -> Table:
    return Table(schema=schema, name=name, columns=tuple(Column(n, t) for n, t in columns))


def omop() -> Snapshot:
    return Snapshot.build(
        "p",
        "postgresql",
        [
            _t("person", ("person_id", "bigint"), ("gender_concept_id", "bigint")),
            _t("concept", ("concept_id", "bigint"), ("concept_name", "text")),
            _t(
                "condition_occurrence",
                ("condition_occurrence_id", "bigint"),
                ("person_id", "bigint"),
                ("condition_concept_id", "bigint"),
            ),
            _t("drug_exposure", ("person_id", "bigint"), ("drug_concept_id", "bigint")),
            _t("visit", ("person_id", "text")),  # incompatible type: no edge
            _t("icd10_codes", ("code", "text"), ("description", "text"), schema="cms"),
        ],
    )


def test_inferred_references_follow_key_names_and_types() -> None:
    refs = inferred_references(omop())
    assert refs["omop.condition_occurrence"] == {"omop.person", "omop.concept"}
    assert refs["omop.person"] == {"omop.concept"}
    assert "omop.visit" not in refs
    assert "omop.concept" not in refs  # its own key is no reference


def test_graph_without_inference_has_no_edges_here() -> None:
    graph = SchemaGraph.from_snapshot(omop(), inferred=False)
    assert not any(graph.neighbours.values())
    assert SchemaGraph.from_snapshot(omop()).references["omop.condition_occurrence"] == (
        "omop.concept",
        "omop.person",
    )


def test_completion_brings_the_referenced_model_tables() -> None:
    graph = SchemaGraph.from_snapshot(omop())
    ranked = [
        ("omop.condition_occurrence", 0.9),
        ("cms.icd10_codes", 0.8),
        ("omop.drug_exposure", 0.3),
        ("omop.visit", 0.2),
    ]
    out = [k for k, _ in complete_references(ranked, graph, top_k=4, core=1, share=0.5)]
    assert out == ["omop.condition_occurrence", "omop.concept", "omop.person", "cms.icd10_codes"]


def test_completion_is_bounded_and_follows_references_only() -> None:
    graph = SchemaGraph.from_snapshot(omop())
    # person is referenced by many tables: reaching it must not pull them in.
    ranked = [("omop.person", 0.9), ("cms.icd10_codes", 0.5)]
    out = [k for k, _ in complete_references(ranked, graph, top_k=10, core=3, share=0.3)]
    assert out == ["omop.person", "omop.concept", "cms.icd10_codes"]
    many = [(f"omop.t{i}", 1.0 - i / 100) for i in range(10)]
    assert complete_references(many, graph, top_k=10) == many  # no references: unchanged
    for k in (1, 2, 3, 5, 10):
        assert len(complete_references(ranked + many, graph, top_k=k)) <= k


def test_select_tables_completes_along_inferred_keys() -> None:
    graph = SchemaGraph.from_snapshot(omop())
    signals = Signals(tables={"omop.condition_occurrence": 0.8, "cms.icd10_codes": 0.9, "omop.visit": 0.1})
    plain = RetrievalWeights(inferred_joins=False, completion_share=0.0)
    before = [
        k for k, _ in select_tables(signals, SchemaGraph.from_snapshot(omop(), inferred=False), 3, plain)
    ]
    after = [k for k, _ in select_tables(signals, graph, 3)]
    assert "omop.concept" not in before
    assert "omop.concept" in after or "omop.person" in after


def test_a_role_before_the_key_still_finds_the_table() -> None:
    snap = Snapshot.build(
        "p",
        "postgresql",
        [
            _t("users", ("id", "bigint"), ("name", "text"), schema="k"),
            _t(
                "votes",
                ("FromUserId", "bigint"),
                ("ToUserId", "bigint"),
                ("owner_user_id", "bigint"),
                schema="k",
            ),
        ],
    )
    assert inferred_references(snap) == {"k.votes": {"k.users"}}


def test_a_numbered_key_is_a_key_of_its_table() -> None:
    # OMOP's concept_relationship joins concept twice, as concept_id_1 and concept_id_2
    snap = Snapshot.build(
        "p",
        "postgresql",
        [
            _t("concept", ("concept_id", "bigint"), ("concept_name", "text")),
            _t("relationship", ("relationship_id", "text"), ("relationship_name", "text")),
            _t(
                "concept_relationship",
                ("concept_id_1", "bigint"),
                ("concept_id_2", "bigint"),
                ("relationship_id", "text"),
            ),
            _t("matches", ("player_1_id", "bigint"), ("score_1", "bigint")),
            _t("player", ("player_id", "bigint")),
            _t("readings", ("value_1", "bigint"), ("sensor_2", "bigint")),  # numbered, but no key
        ],
    )
    refs = inferred_references(snap)
    assert refs == {
        "omop.concept_relationship": {"omop.concept", "omop.relationship"},
        "omop.matches": {"omop.player"},
    }


def cybersyn() -> Snapshot:
    """A Cybersyn-style share: entities, variables (attributes) and values (timeseries), no keys declared."""
    return Snapshot.build(
        "p",
        "postgresql",
        [
            _t("bank_entities", ("id_rssd", "text"), ("name", "text"), schema="fin"),
            _t(
                "bank_attributes",
                ("variable", "text"),
                ("variable_name", "text"),
                ("unit", "text"),
                schema="fin",
            ),
            _t(
                "bank_timeseries",
                ("id_rssd", "text"),
                ("variable", "text"),
                ("date", "date"),
                ("value", "double precision"),
                schema="fin",
            ),
            _t("stock_attributes", ("variable", "text"), ("variable_name", "text"), schema="fin"),
            _t("branch_locations", ("id_rssd", "bigint"), ("city", "text"), schema="fin"),  # another type
            _t("other_entities", ("id_rssd", "text"), schema="elsewhere"),  # another schema
        ],
    )


def test_shared_key_columns_and_name_siblings_are_links() -> None:
    links = {frozenset(pair) for pair in shared_key_links(cybersyn())}
    assert frozenset(("fin.bank_entities", "fin.bank_timeseries")) in links  # the same id_rssd
    assert frozenset(("fin.bank_attributes", "fin.bank_timeseries")) in links  # siblings sharing `variable`
    assert frozenset(("fin.bank_entities", "fin.branch_locations")) not in links  # text vs bigint
    assert not any("elsewhere.other_entities" in pair for pair in links)  # one schema only
    # `variable` is no key name: other prefixes' attribute tables are not tied to the bank's
    assert frozenset(("fin.stock_attributes", "fin.bank_timeseries")) not in links


def test_a_key_column_naming_a_table_is_a_reference_not_a_link_and_generic_keys_are_ignored() -> None:
    assert not any("omop.person" in pair for pair in shared_key_links(omop()))
    many = Snapshot.build("p", "postgresql", [_t(f"t{i}", ("geo_id", "text"), schema="s") for i in range(40)])
    assert shared_key_links(many) == set()  # forty tables share it: a generic column, no structure


def test_the_table_between_two_top_tables_is_bridged_in_along_links() -> None:
    graph = SchemaGraph.from_snapshot(cybersyn())
    signals = Signals(
        tables={
            "fin.bank_entities": 0.9,
            "fin.bank_attributes": 0.8,
            "fin.stock_attributes": 0.75,
            "fin.branch_locations": 0.7,
            "fin.bank_timeseries": 0.2,
        }
    )
    top = [name for name, _ in select_tables(signals, graph, top_k=3)]
    assert "fin.bank_timeseries" in top
    assert top[:2] == ["fin.bank_entities", "fin.bank_attributes"]
    assert "fin.bank_timeseries" not in graph.references.get("fin.bank_entities", ())  # no direction guessed


def test_a_table_several_selected_tables_reference_joins_the_set() -> None:
    # The request's best tables are elsewhere (cms); two OMOP tables further down both reference person
    # and concept: those are the model's hubs the SQL joins through, though neither is in the top three.
    graph = SchemaGraph.from_snapshot(omop())
    ranked = [
        ("cms.icd10_codes", 0.9),
        ("cms.a", 0.85),
        ("cms.b", 0.8),
        ("omop.drug_exposure", 0.7),
        ("omop.condition_occurrence", 0.6),
        ("cms.c", 0.5),
        ("cms.d", 0.4),
        ("cms.e", 0.3),
        ("cms.f", 0.2),
        ("cms.g", 0.1),
    ]
    out = [k for k, _ in complete_references(ranked, graph, top_k=10, core=3, share=0.3)]
    assert len(out) == 10
    # each hub sits right after the second table that references it; the weakest tables make room
    assert out[3:7] == ["omop.drug_exposure", "omop.condition_occurrence", "omop.concept", "omop.person"]
    assert out[-1] == "cms.e"
    # one reference alone, from outside the core, is not enough
    alone = [item for item in ranked if item[0] != "omop.condition_occurrence"]
    assert [k for k, _ in complete_references(alone, graph, top_k=9)] == [k for k, _ in alone]


def test_a_core_table_with_more_references_than_room_brings_the_most_relevant_first() -> None:
    # person references concept, care_site, location and provider; one slot: the request's choice, not the alphabet's
    snap = Snapshot.build(
        "p",
        "postgresql",
        [
            _t(
                "person",
                ("person_id", "bigint"),
                ("care_site_id", "bigint"),
                ("location_id", "bigint"),
                ("provider_id", "bigint"),
            ),
            _t("care_site", ("care_site_id", "bigint"), ("care_site_name", "text")),
            _t("location", ("location_id", "bigint"), ("city", "text")),
            _t("provider", ("provider_id", "bigint"), ("specialty", "text")),
            *(_t(f"other{i}", ("x", "text")) for i in range(4)),
        ],
    )
    graph = SchemaGraph.from_snapshot(snap)
    ranked = [("omop.person", 0.9), *((f"omop.other{i}", 0.5 - i / 100) for i in range(4))]
    relevance = {"omop.care_site": 0.1, "omop.location": 0.4, "omop.provider": 0.2}
    out = [k for k, _ in complete_references(ranked, graph, top_k=4, core=1, share=0.25, relevance=relevance)]
    assert out == ["omop.person", "omop.location", "omop.other0", "omop.other1"]
    # without scores the tie is broken by name, as before
    out = [k for k, _ in complete_references(ranked, graph, top_k=4, core=1, share=0.25)]
    assert out[1] == "omop.care_site"
