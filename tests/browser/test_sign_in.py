"""Sign in, stay signed in (the access token refreshed in the background), sign out."""

from __future__ import annotations

from tests.browser.conftest import ACCESS_TOKEN_TTL, DEMO_EMAIL, DEMO_PASSWORD, Console


async def test_a_wrong_password_shows_the_apis_message(console: Console) -> None:
    page = console.page
    console.problems.expect(401, "/v1/auth/login")
    refused = await console.server.api(
        "POST",
        "/v1/auth/login",
        token="",
        json={"email": "nobody@example.com", "password": "wrong-password"},
    )
    api_message = refused.json()["error"]["message"]
    await page.goto(console.url("/"))
    await page.get_by_label("Email").fill(DEMO_EMAIL)
    await page.get_by_label("Password", exact=True).fill("not-the-password")
    await console.screenshot("sign-in")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == api_message
    await console.screenshot("sign-in-failed")


async def test_signed_in_the_token_is_refreshed_in_the_background_then_sign_out(
    console: Console,
) -> None:
    page = console.page
    await page.goto(console.url("/contacts"))  # a deep link: back there after signing in
    await page.wait_for_url("**/app/signin")
    await console.sign_in(open_console=False)
    await page.wait_for_url("**/app/contacts")
    first = await page.evaluate("JSON.parse(localStorage.getItem('pytake.session')).accessToken")
    async with page.expect_response(
        lambda r: r.url.endswith("/v1/auth/refresh"), timeout=ACCESS_TOKEN_TTL * 2000
    ) as refreshed:
        pass
    assert (await refreshed.value).status == 200
    second = await page.evaluate("JSON.parse(localStorage.getItem('pytake.session')).accessToken")
    assert second != first
    await page.get_by_role("link", name="Inbox").click()
    await page.wait_for_url("**/app/inbox")
    await console.screenshot("inbox")

    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("button", name="Sign in").wait_for()
    assert await page.evaluate("localStorage.getItem('pytake.session')") is None
    await page.reload()
    await page.get_by_role("button", name="Sign in").wait_for()


async def test_keyboard_alone_signs_in_and_moves_through_the_console_with_focus_shown(
    console: Console,
) -> None:
    page = console.page
    await page.goto(console.url("/"))
    await page.get_by_label("Email").wait_for()
    # From the top of the page: Tab reaches the form's fields, typing fills them, Enter sends.
    for label, value in (("Email", DEMO_EMAIL), ("Password", DEMO_PASSWORD)):
        for _ in range(5):
            [focused] = await console.tab_through(1)
            if focused["control"] and label in focused["control"]:
                break
        else:
            raise AssertionError(f"Tab never reached the {label} field")
        assert focused["visible"], f"no visible focus on {focused['control']}"
        await page.keyboard.type(value)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Sign out").wait_for()
    await page.wait_for_url("**/app/inbox")
    for path, link in (("/inbox", "Inbox"), ("/contacts", "Contacts"), ("/settings", "Settings")):
        await page.get_by_role("link", name=link).click()  # in the app: nothing left loading
        await page.wait_for_url(f"**/app{path}**")  # a section may redirect to its first page
        await page.get_by_role("main").get_by_role("heading").first.wait_for(state="attached")
        seen = await console.tab_through(12)
        controls = [f["control"] for f in seen]
        assert len(set(controls)) >= 6, (path, controls)  # focus moves on, it is not trapped
        hidden = [f["control"] for f in seen if f["control"] and not f["visible"]]
        assert hidden == [], f"{path}: focus not visible on {hidden}"
