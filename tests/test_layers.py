"""The package layering of the design card holds: no package imports one above it, and no two
packages import each other (scripts/import_graph.py prints the graph)."""

from scripts.import_graph import cycles, graph, upward_imports


def test_no_package_imports_one_above_it_or_one_that_imports_it():
    edges = graph()

    assert "runtime" in edges and "services" in edges["jobs"]
    assert upward_imports(edges) == []
    assert cycles(edges) == []


def test_the_check_sees_an_upward_import_and_a_cycle():
    edges = {"services": {"jobs"}, "jobs": {"services"}, "schemas": {"imaging"}}

    assert upward_imports(edges) == [("services", "jobs")]
    assert cycles(edges) == [("jobs", "services")]
