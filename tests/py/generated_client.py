"""Drives a live wagate through a Python client generated from its own /openapi.json.

    python generated_client.py BASE_URL ADMIN_TOKEN CLIENT_DIR

CLIENT_DIR holds the `wagate_client` package that openapi-python-client generated (see
scripts/schemathesis). A generated client parses every answer into typed models, with enums for
states and statuses, so an answer that strays from the document (a field of another type, a
state the document does not list) fails here, as it would in a customer's code.
"""

import sys


def main(base, admin_token, client_dir):
    sys.path.insert(0, client_dir)
    from wagate_client import AuthenticatedClient
    from wagate_client.api.campaigns import create_campaign, get_campaign, list_campaigns
    from wagate_client.api.messages import list_messages
    from wagate_client.api.projects import create_project, get_current_project
    from wagate_client.api.webhooks import (
        create_webhook_endpoint,
        list_webhook_endpoints,
        reset_endpoint_breaker,
    )
    from wagate_client.models import (
        BreakerState,
        CampaignIn,
        CampaignState,
        EndpointBody,
        ErrorBody,
        ProjectIn,
        SendProvider,
        Topic,
    )

    def expect(value, kind, what):
        if not isinstance(value, kind):
            raise SystemExit(f"generated client: {what}: got {value!r}, not a {kind.__name__}")
        return value

    admin = AuthenticatedClient(base_url=base, token=admin_token, raise_on_unexpected_status=True)
    created = create_project.sync(
        client=admin,
        body=ProjectIn(id="generated", name="Generated client", phone_numbers=["+918000000009"]),
    )
    key = created.api_key
    project = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    me = get_current_project.sync(client=project)
    assert me.id == "generated", me

    endpoint = create_webhook_endpoint.sync(
        client=project,
        body=EndpointBody(
            webhook_url="http://127.0.0.1:9/hook", topics=[Topic.META_DELIVERY, Topic.VALUE_4]
        ),
    )
    assert set(endpoint.topics) == {Topic.META_DELIVERY, Topic.VALUE_4}, endpoint.topics
    assert endpoint.shared_secret.startswith("whsec_"), "a generated secret"
    breaker = reset_endpoint_breaker.sync(endpoint.id, client=project)
    assert breaker.state == BreakerState.CLOSED, breaker
    listed = list_webhook_endpoints.sync(client=project)
    assert [e.id for e in listed.data] == [endpoint.id], listed

    campaign = create_campaign.sync(
        client=project,
        body=CampaignIn(
            name="Generated", template_id="t1", provider="datagen", sender="+918000000009"
        ),
    )
    assert campaign.state == CampaignState.DRAFT and campaign.provider == SendProvider.DATAGEN
    again = get_campaign.sync(campaign.id, client=project)
    assert again.id == campaign.id and again.counts.queued == 0, again
    page = list_campaigns.sync(client=project)
    assert [c.id for c in page.data] == [campaign.id] and page.next_cursor is None, page

    missing = get_campaign.sync("cmp_00000000000000000000000000000000", client=project)
    expect(missing, ErrorBody, "an unknown campaign")
    assert missing.error.code == "not_found", missing
    messages = list_messages.sync(client=project)
    assert messages.data == [], messages
    print("generated client: 10 calls, every answer parsed into its typed model")


if __name__ == "__main__":
    main(*sys.argv[1:4])
