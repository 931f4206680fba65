"""The hub's named states and bounds are the wire's, word for word."""

from firmware import connector
from hub.domain.bounds import MAX_ID_LEN
from hub.domain.states import ConnectorStatus, ReservationState, StationStatus
from transport import kinds as K
from transport import serversession


def test_connector_statuses_are_the_wire_table_and_the_boards_names():
    assert tuple(ConnectorStatus) == K.CONNECTOR_STATUSES
    board = {getattr(connector, m.name) for m in ConnectorStatus if hasattr(connector, m.name)}
    assert board == set(ConnectorStatus) - {ConnectorStatus.SUSPENDED_EVSE}  # only OCPP chargers send it


def test_station_statuses_are_the_wire_table():
    assert tuple(StationStatus) == K.STATION_STATUSES


def test_a_state_equals_its_text_so_the_store_and_the_api_see_no_change():
    assert ReservationState.CONFIRMED == "confirmed"
    assert "%s" % StationStatus.AVAILABLE == "Available"
    assert [str(s) for s in ReservationState] == ["confirmed", "fulfilled", "cancelled", "expired"]


def test_the_hub_and_the_board_bound_ids_alike():
    assert serversession._MAX_ID_LENGTH == MAX_ID_LEN
