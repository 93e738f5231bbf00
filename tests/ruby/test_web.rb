# frozen_string_literal: true

require_relative "test_helper"
require "rack/mock"

# AcidicJob::Web as a plain Rack application (no Rails): the defaults, the authorization
# hook, both CSRF forms outside Rails (rack.session, the double-submit cookie), the files
# and the parameters. tests/web drives the page itself in a browser, mounted in Rails.
class WebTest < AcidicTest
  class WebFailingJob < ActiveJob::Base
    include AcidicJob
    cattr_accessor :failing, default: true

    def perform(label)
      idempotently with: { label: label } do
        step :one
        step :two
      end
    end

    def one; end

    def two
      raise ArgumentError, "two failed <b>#{@label}</b>" if self.class.failing
    end
  end

  def setup
    super
    WebFailingJob.failing = true
    @log = StringIO.new
  end

  def failed_run(label = "x")
    job = WebFailingJob.new(label)
    assert_raises(ArgumentError) { job.perform_now }
    AcidicJob::Key.find_by(idempotency_key: job.job_id).id
  end

  def web(**options)
    AcidicJob::Web.new(logger: Logger.new(@log), **options)
  end

  # [status, headers, body] of a request to the app mounted at /acidic_job (path: the
  # part after the mount point)
  def request(app, method, path, env = {})
    Rack::MockRequest.env_for(path, { method: method }.merge(env)).then do |e|
      e["SCRIPT_NAME"] = "/acidic_job"
      e["PATH_INFO"] = "" if path.empty?
      status, headers, body = app.call(e)
      text = +""
      body.each { |part| text << part }
      [status, headers.transform_keys(&:downcase), text]
    end
  end

  def json(response)
    JSON.parse(response[2])
  end

  def post(app, path, body, env = {})
    request(app, "POST", path, { "CONTENT_TYPE" => "application/json", input: JSON.generate(body) }.merge(env))
  end

  def test_read_only_without_a_hook_outside_rails
    id = failed_run
    app = web
    config = json(request(app, "GET", "/api/config"))
    assert_equal true, config["read_only"]
    assert_equal [], config["actions"]
    status, _, body = post(app, "/api/runs/#{id}/retry", {}, "HTTP_X_CSRF_TOKEN" => config["csrf_token"])
    assert_equal 403, status
    assert_equal "READ_ONLY", JSON.parse(body)["error"]["code"]
    assert_equal "failed", AcidicJob::Admin.show(id).run.state
    assert_match(/read-only: no authorize hook/, @log.string)
    assert_equal 1, @log.string.scan("read-only").size, "warned once"
  end

  def test_authorize_hook_grants_per_action
    id = failed_run
    asked = []
    app = web(authorize: ->(request, action) { asked << action; %w[read retry].include?(action) && request.ip == "10.0.0.1" })
    from = { "REMOTE_ADDR" => "10.0.0.1" }
    status, headers, body = request(app, "GET", "/api/config", from)
    assert_equal 200, status
    config = JSON.parse(body)
    assert_equal ["retry"], config["actions"]
    assert_equal false, config["read_only"]
    cookie = headers["set-cookie"][/acidic_job_csrf=[^;]+/]
    assert cookie, "the double-submit cookie"
    with_token = from.merge("HTTP_X_CSRF_TOKEN" => config["csrf_token"], "HTTP_COOKIE" => cookie)
    status, _, body = post(app, "/api/runs/#{id}/discard", {}, with_token)
    assert_equal [403, "FORBIDDEN"], [status, JSON.parse(body)["error"]["code"]]
    status, _, body = post(app, "/api/runs/#{id}/retry", {}, with_token)
    assert_equal 200, status, body
    assert_equal "queued", JSON.parse(body)["run"]["state"]
    assert_includes asked, "discard"
    # reading refused: every request, the page too
    assert_equal 403, request(app, "GET", "/", "REMOTE_ADDR" => "10.9.9.9")[0]
    assert_equal 403, request(app, "GET", "/api/stats", "REMOTE_ADDR" => "10.9.9.9")[0]
  end

  def test_csrf_token_in_rack_session
    id = failed_run
    app = web(read_only: false)
    session = {}
    config = json(request(app, "GET", "/api/config", "rack.session" => session))
    assert_equal config["csrf_token"], session["acidic_job.csrf_token"]
    status, _, body = post(app, "/api/runs/#{id}/discard", {}, "rack.session" => session, "HTTP_X_CSRF_TOKEN" => "wrong")
    assert_equal [403, "CSRF"], [status, JSON.parse(body)["error"]["code"]]
    status, = post(app, "/api/runs/#{id}/discard", {}, "rack.session" => {}, "HTTP_X_CSRF_TOKEN" => config["csrf_token"])
    assert_equal 403, status, "another session's token"
    assert_equal "failed", AcidicJob::Admin.show(id).run.state
    status, _, body = post(app, "/api/runs/#{id}/discard", {}, "rack.session" => session, "HTTP_X_CSRF_TOKEN" => config["csrf_token"])
    assert_equal 200, status, body
    assert_equal "discarded", AcidicJob::Admin.show(id).run.state
  end

  def test_double_submit_cookie
    id = failed_run
    app = web(read_only: false)
    _, headers, body = request(app, "GET", "/api/config")
    token = JSON.parse(body)["csrf_token"]
    set_cookie = headers["set-cookie"]
    assert_match(/acidic_job_csrf=#{Regexp.escape(token)}/, set_cookie)
    assert_match(/httponly/i, set_cookie)
    assert_match(/samesite=strict/i, set_cookie)
    assert_match(%r{path=/acidic_job/}i, set_cookie)
    # the header alone, the cookie alone, a form body: refused
    assert_equal 403, post(app, "/api/runs/#{id}/retry", {}, "HTTP_X_CSRF_TOKEN" => token)[0]
    assert_equal 403, post(app, "/api/runs/#{id}/retry", {}, "HTTP_COOKIE" => "acidic_job_csrf=#{token}")[0]
    form = request(app, "POST", "/api/runs/#{id}/retry", "CONTENT_TYPE" => "application/x-www-form-urlencoded",
                                                         input: "force=true", "HTTP_X_CSRF_TOKEN" => token,
                                                         "HTTP_COOKIE" => "acidic_job_csrf=#{token}")
    assert_equal 400, form[0]
    assert_equal "failed", AcidicJob::Admin.show(id).run.state
    both = { "HTTP_X_CSRF_TOKEN" => token, "HTTP_COOKIE" => "acidic_job_csrf=#{token}" }
    status, _, body = post(app, "/api/bulk", { action: "retry", ids: [id, 999_999] }, both)
    assert_equal 200, status, body
    result = JSON.parse(body)
    assert_equal [1, 1], [result["changed"], result["skipped"]]
    assert_equal "AJ_ENOTFOUND", result["errors"][0]["code"]
    # the page's own cookie again: the same token
    _, headers, body = request(app, "GET", "/api/config", "HTTP_COOKIE" => "acidic_job_csrf=#{token}")
    assert_equal token, JSON.parse(body)["csrf_token"]
    assert_nil headers["set-cookie"]
  end

  def test_files_and_parameters
    app = web
    status, headers, = request(app, "GET", "")
    assert_equal [302, "/acidic_job/"], [status, headers["location"]]
    status, headers, body = request(app, "GET", "/")
    assert_equal 200, status
    assert_includes body, 'src="assets/app.js"'
    assert_match(/script-src 'self'/, headers["content-security-policy"])
    assert_equal "nosniff", headers["x-content-type-options"]
    status, headers, body = request(app, "GET", "/assets/app.js")
    assert_equal [200, "text/javascript; charset=utf-8"], [status, headers["content-type"]]
    assert_includes body, "textContent"
    ["/assets/../index.html", "/assets/%2e%2e/README.md", "/assets/nope.js", "/api/nope", "/etc/passwd"].each do |path|
      assert_equal 404, request(app, "GET", path)[0], path
    end
    %w[state=bogus limit=0 limit=1001 cursor=-1 cursor=abc older_than=1h since=yesterday order=up].each do |query|
      status, _, body = request(app, "GET", "/api/runs?#{query}")
      assert_equal [400, "AJ_EINVALID"], [status, JSON.parse(body)["error"]["code"]], query
    end
    assert_equal [404, "AJ_ENOTFOUND"], request(app, "GET", "/api/runs/999999").then { |s, _, b| [s, JSON.parse(b)["error"]["code"]] }
    assert_equal 405, request(app, "DELETE", "/api/stats")[0]
  end

  def test_a_store_of_its_own
    id = failed_run
    app = web(database_url: TestDatabase.core_url, lock_timeout: 5, read_only: true)
    config = json(request(app, "GET", "/api/config"))
    assert_equal(postgres? ? "postgres" : "sqlite", config["database"])
    page = json(request(app, "GET", "/api/runs"))
    assert_equal [id], page["runs"].map { |r| r["id"] }
  end

  def test_reading_a_run
    id = failed_run("<script>")
    app = web
    doc = json(request(app, "GET", "/api/runs/#{id}"))
    assert_equal "failed", doc["run"]["state"]
    assert_equal %w[done current], doc["steps"].map { |s| s["state"] }
    assert_equal "two failed <b><script></b>", doc["error"]["message"]
    assert_match(/test_web\.rb/, doc["error"]["backtrace"].first)
    page = json(request(app, "GET", "/api/runs?state=failed&limit=1"))
    assert_equal [id], page["runs"].map { |r| r["id"] }
    stats = json(request(app, "GET", "/api/stats"))
    assert_equal 1, stats["total"]
  end
end
