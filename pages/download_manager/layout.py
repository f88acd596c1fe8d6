"""Layout of the download manager view."""

from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from src.auth import Role, current_actor
from src.components.cards import kpi_card, kpi_row, page_header
from src.components.filter_bar import filter_bar, filters_from_query

VIEW_KEY = "download-manager"
KPIS = (
    ("dm-kpi-runs", "Runs"),
    ("dm-kpi-cloud", "With bags in the cloud"),
    ("dm-kpi-downloaded", "Downloaded"),
    ("dm-kpi-extracted", "Extracted"),
    ("dm-kpi-analyzed", "Analysed"),
    ("dm-kpi-jobs", "Active jobs"),
)
STATE_COLUMNS = [
    {"field": "coordinate", "headerName": "Run", "flex": 3, "minWidth": 280, "filter": "agTextColumnFilter"},
    {"field": "cloud_bags", "headerName": "Cloud bags", "flex": 1, "filter": "agNumberColumnFilter"},
    {"field": "cloud_size", "headerName": "Cloud size", "flex": 1},
    {"field": "cloud_samples", "headerName": "ML samples", "flex": 1, "filter": "agNumberColumnFilter"},
    {"field": "local_bags", "headerName": "Downloaded bags", "flex": 1, "filter": "agNumberColumnFilter"},
    {"field": "extracted", "headerName": "Extracted", "flex": 1},
    {"field": "analyzed", "headerName": "Analysed", "flex": 1},
    {"field": "next_action", "headerName": "Next action", "flex": 1, "filter": "agTextColumnFilter"},
]
POLICIES = [
    {"label": "Skip files that differ (report a conflict)", "value": "skip"},
    {"label": "Overwrite files that differ", "value": "overwrite"},
]


def layout(**query: str) -> html.Div:
    """Return the download manager for the filters in the query string."""
    filters = filters_from_query(query)
    actor = current_actor()
    may_operate = bool(actor and actor.can(Role.OPERATOR))
    return html.Div(
        [
            page_header("Download manager", "Where every run stands, and the jobs that move data."),
            filter_bar(VIEW_KEY, filters),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(id="dm-status"),
            dbc.Card(
                dbc.CardBody(
                    [
                        html.Div(
                            [
                                html.H2("Runs", className="h6 mb-0"),
                                html.Span(id="dm-selection", className="small text-muted ms-2"),
                            ],
                            className="d-flex align-items-center mb-2",
                        ),
                        dag.AgGrid(
                            id="dm-grid",
                            columnDefs=STATE_COLUMNS,
                            rowData=[],
                            getRowId="params.data.coordinate",
                            defaultColDef={"sortable": True, "resizable": True, "floatingFilter": True},
                            dashGridOptions={
                                "rowSelection": {
                                    "mode": "multiRow",
                                    "checkboxes": True,
                                    "headerCheckbox": True,
                                    "selectAll": "filtered",
                                    "enableClickSelection": False,
                                },
                                "pagination": True,
                                "paginationPageSize": 50,
                            },
                            style={"height": "440px"},
                            className="ag-theme-alpine",
                        ),
                    ]
                ),
                className="mb-3",
            ),
            dcc.Store(id="dm-finished-jobs"),
            dbc.Tabs(
                [
                    dbc.Tab(download_tab(may_operate), label="Raw download", tab_id="dm-tab-raw"),
                    dbc.Tab(analyse_tab(may_operate), label="Analyse", tab_id="dm-tab-analyse"),
                    dbc.Tab(upload_tab(may_operate), label="ML upload", tab_id="dm-tab-upload"),
                    dbc.Tab(dataset_tab(may_operate), label="Dataset fetch", tab_id="dm-tab-dataset"),
                    dbc.Tab(html.Div(id="dm-jobs", className="p-3"), label="Jobs", tab_id="dm-tab-jobs"),
                ],
                id="dm-tabs",
                active_tab=query.get("tab", "dm-tab-raw"),
                className="mt-3",
            ),
            dcc.Interval(id="dm-jobs-tick", interval=1000),
        ]
    )


def action_button(label: str, button_id: str, may_operate: bool) -> dbc.Button:
    """Return a button that only operators may press (the server checks again)."""
    return dbc.Button(
        label,
        id=button_id,
        color="primary",
        disabled=not may_operate,
        title=None if may_operate else "Needs the operator role",
        className="ms-2",
    )


def plan_and_start(
    plan: tuple[str, str], start: tuple[str, str], message_id: str, plan_id: str, may_operate: bool
) -> list:
    """Return a tab's common tail: a dry-run button, the operators' start button, its message and the plan."""
    return [
        dbc.Button(plan[0], id=plan[1], color="secondary", outline=True),
        action_button(start[0], start[1], may_operate),
        html.Div(id=message_id, className="mt-2 small"),
        html.Div(id=plan_id, className="mt-2"),
    ]


def download_tab(may_operate: bool) -> html.Div:
    """Return the raw download tab: policy, plan, start."""
    return html.Div(
        [
            dbc.RadioItems(id="dm-conflict", options=POLICIES, value="skip", className="mb-2 small"),
            *plan_and_start(
                ("Plan download", "dm-plan-download"),
                ("Download selected runs", "dm-start-download"),
                "dm-action-msg",
                "dm-download-plan",
                may_operate,
            ),
        ],
        className="p-3",
    )


def analyse_tab(may_operate: bool) -> html.Div:
    """Return the batch tab: download → extract → analyse every ticked run, or every run under the filter."""
    return html.Div(
        [
            html.P(
                "Queue download → extract → analyse for the ticked runs (none ticked: every run under the filter) "
                "that are not analysed yet. One batch job stands for them in the job list; follow its runs in Fleet.",
                className="small text-muted mb-2",
            ),
            action_button("Analyse selection", "dm-start-batch", may_operate),
            html.Div(id="dm-batch-msg", className="mt-2 small"),
        ],
        className="p-3",
    )


def upload_tab(may_operate: bool) -> html.Div:
    """Return the ML upload tab: export id, policy, plan, start."""
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(dcc.Dropdown(id="dm-export", placeholder="Choose a local export"), md=5),
                    dbc.Col(
                        dbc.RadioItems(id="dm-upload-conflict", options=POLICIES, value="skip", className="small"), md=7
                    ),
                ],
                className="mb-2",
            ),
            *plan_and_start(
                ("Plan upload", "dm-plan-upload"),
                ("Upload export", "dm-start-upload"),
                "dm-upload-msg",
                "dm-upload-plan",
                may_operate,
            ),
        ],
        className="p-3",
    )


def dataset_tab(may_operate: bool) -> html.Div:
    """Return the dataset fetch tab: name, split, plan, start (for the current filter)."""
    return html.Div(
        [
            html.P("Fetches the samples and labels of every run under the current filter.", className="small"),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Input(id="dm-dataset-name", placeholder="dataset name, e.g. north-may", maxLength=64), md=4
                    ),
                    dbc.Col(dbc.Checkbox(id="dm-split", label="Train/val split", value=False), md="auto"),
                    dbc.Col(
                        dbc.Input(id="dm-train-fraction", type="number", min=0.05, max=0.95, step=0.05, value=0.8), md=2
                    ),
                ],
                className="mb-2 align-items-center",
            ),
            *plan_and_start(
                ("Plan dataset", "dm-plan-dataset"),
                ("Fetch dataset", "dm-start-dataset"),
                "dm-dataset-msg",
                "dm-dataset-plan",
                may_operate,
            ),
        ],
        className="p-3",
    )
