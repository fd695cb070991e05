"""Route lists for APIs that replace the whole list."""

from controlplane.routes import canonical, desired


def test_keeps_foreign_adds_ours_advertised():
    assert desired(["203.0.113.0/24", "0.0.0.0/0", "::/0"], ["192.0.2.0/24", "10.0.0.0/8"], ["192.0.2.0/24"]) == (
        "0.0.0.0/0", "192.0.2.0/24", "203.0.113.0/24", "::/0")


def test_ours_not_advertised_is_not_added_and_dropped():
    assert desired(["192.0.2.0/24", "198.51.100.0/24"], ["198.51.100.0/24"], ["192.0.2.0/24", "198.51.100.0/24"]) == (
        "198.51.100.0/24",)


def test_idempotent_and_canonical():
    once = desired(["203.0.113.0/24"], ["192.0.2.0/24"], ["192.0.2.7/24"])
    assert desired(once, ["192.0.2.0/24"], ["192.0.2.0/24"]) == once == ("192.0.2.0/24", "203.0.113.0/24")
    assert canonical("10.1.2.3/8") == "10.0.0.0/8"
