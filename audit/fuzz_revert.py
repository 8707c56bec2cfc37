"""Fuzz stage-revert with generated EventBridge events (hypothesis, fixed seed, derandomized).

Whatever the event, stage-revert writes only to: the stage stack; the change sets of the event's own
execution; production stacks never released (a failed first creation); and, only after a failed
production deploy of the pipeline's current execution, a Region that this execution already updated,
returned to the release. Its notifications and the released template it may keep are allowed too.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, seed
from hypothesis import strategies as st
from moto.cloudformation.models import cloudformation_backends

from audit import sandbox
from audit.fuzz import FUZZ_SETTINGS, SEED
from audit.scenarios import SCENARIOS
from audit.table import Row
from local_aws import FakeLambdaContext
from release_pipeline import clients, releases
from tests.integration import test_least_privilege as lp

NEVER_RELEASED = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS"}
DEPLOY_STAGE_REGION = {"DeployPrimary": lp.PRIMARY, "DeploySecondary": lp.SECONDARY}
_VALUES: list[Any] = [None, 0, 1.5, True, "", [], {}, "x" * 300]


@contextmanager
def writes_recorded() -> Iterator[list[tuple[str, str, str, dict[str, Any], str]]]:
    """(service, operation, Region, parameters, stack status before the call) of every write call."""
    calls: list[tuple[str, str, str, dict[str, Any], str]] = []
    pending: list[dict[str, Any]] = []
    session = clients._session()

    def parameters(params: dict[str, Any], **_: Any) -> None:
        pending.append(dict(params))

    def call(model: Any, request_signer: Any, **_: Any) -> None:
        params = pending.pop() if pending else {}
        log = sandbox.CallLog()
        log(model)
        service, operation = log.calls[0]
        if not log.writes():
            return
        region = request_signer._region_name
        status = ""
        if service == "cloudformation" and "StackName" in params:
            stacks = cloudformation_backends[lp.ACCOUNT][region].stacks.values()
            found = [s for s in stacks if params["StackName"] in (s.name, s.stack_id) and s.status != "DELETE_COMPLETE"]
            status = found[0].status if found else "NONE"
        calls.append((service, operation, region, params, status))

    session.events.register("provide-client-params", parameters, unique_id="audit-revert-params")
    session.events.register("before-call", call, unique_id="audit-revert-call")
    try:
        yield calls
    finally:
        session.events.unregister("provide-client-params", unique_id="audit-revert-params")
        session.events.unregister("before-call", unique_id="audit-revert-call")


@st.composite
def events(draw: st.DrawFn, base: dict[str, Any], pipeline: str) -> Any:
    event = copy.deepcopy(base)
    event["id"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4))
    detail = event["detail"]
    detail["pipeline"] = draw(st.sampled_from([pipeline, pipeline, "other-pipeline", pipeline + "-2"]))
    detail["stage"] = draw(
        st.sampled_from(["Stage", "DeployPrimary", "DeployPrimary", "DeploySecondary", "DeploySecondary", "Source"])
    )
    detail["state"] = draw(st.sampled_from(["FAILED", "FAILED", "FAILED", "CANCELED", "STOPPED", "SUCCEEDED"]))
    detail["execution-id"] = draw(st.sampled_from([lp.EXECUTION, lp.EXECUTION, str(uuid.uuid4()), "../x", ""]))
    for _ in range(draw(st.integers(0, 2))):
        target = draw(
            st.sampled_from(["detail-type", "source", "detail", "id", "pipeline", "stage", "state", "execution-id"])
        )
        holder = detail if target in ("pipeline", "stage", "state", "execution-id") else event
        if not isinstance(holder, dict):
            continue
        if draw(st.booleans()):
            holder.pop(target, None)
        else:
            holder[target] = draw(st.sampled_from(_VALUES))
    if draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from([None, [], "event", 3, [event]]))
    return event


def _allowed(call: tuple[str, str, str, dict[str, Any], str], event: Any, env: dict[str, str], current: str) -> bool:
    service, operation, region, params, status = call
    detail = event.get("detail") if isinstance(event, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    execution = detail.get("execution-id")
    if service == "sns" and operation == "Publish":
        return params.get("TopicArn") == env["TOPIC_ARN"]
    if service == "s3" and operation == "PutObject":
        return str(params.get("Key", "")).startswith(releases.RELEASES_PREFIX)
    if service != "cloudformation":
        return False
    stack = str(params.get("StackName", ""))
    if stack == env["STAGE_STACK_NAME"] and region == sandbox.REGION:  # the stage stack is in the home Region
        return True
    if operation == "DeleteChangeSet":
        return (
            isinstance(execution, str)
            and bool(execution)
            and str(params.get("ChangeSetName", "")).endswith(env["CHANGE_SET_PREFIX"] + execution)
        )
    if stack != lp.APP:
        return False
    if operation == "DeleteStack":
        return status in NEVER_RELEASED
    # returning a Region to the release: a failed production deploy of the current execution, in a Region
    # whose deploy this execution had already run
    failed_deploy = detail.get("stage") in DEPLOY_STAGE_REGION and detail.get("state") == "FAILED"
    updated_region = {region_ for stage, region_ in DEPLOY_STAGE_REGION.items() if stage != detail.get("stage")}
    return bool(failed_deploy and execution == current and region in updated_region)


def fuzz_stage_revert() -> Row:
    row = Row("fuzz stage-revert", "generated EventBridge events")
    target = sandbox.functions()["stage-revert"]
    with sandbox.emulator():
        accounts = lp.Accounts()
        scenario = SCENARIOS["stage-revert"](accounts)
        sandbox.set_environment(scenario.environment)
        env = scenario.environment
        context = FakeLambdaContext(target.folder, memory_limit_in_mb=target.memory_mb)
        counts = {"writes": 0, "raised": 0, "acted": 0}

        @seed(SEED)
        @FUZZ_SETTINGS
        @given(events(scenario.event, env["PIPELINE_NAME"]))
        def run(event: Any) -> None:
            row.cases += 1
            scenario.replenish(accounts)
            with writes_recorded() as calls:
                try:
                    target.handler(copy.deepcopy(event), context)
                except Exception:  # noqa: BLE001 (whatever escapes the handler is judged)
                    counts["raised"] += 1
            counts["writes"] += len(calls)
            counts["acted"] += bool(calls)
            for call in calls:
                if not _allowed(call, event, env, lp.EXECUTION):
                    detail = event.get("detail") if isinstance(event, dict) else event
                    row.breach(
                        f"{call[1]} {call[3].get('StackName', call[3].get('Key', ''))} in {call[2]} after {detail}"
                    )

        with sandbox.reused_clients():
            run()
    row.figure = f"{row.cases} events, {counts['acted']} acted ({counts['writes']} writes), {counts['raised']} raised"
    return row
