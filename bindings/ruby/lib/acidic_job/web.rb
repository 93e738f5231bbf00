# frozen_string_literal: true

require "json"
require "logger"
require "securerandom"
require "rack"

module AcidicJob
  # The dashboard: a Rack application serving the one front end in web/ and the JSON API
  # of docs/web-api.md over AcidicJob::Admin (the core's operator operations).
  #
  #   # config/routes.rb (Rails): actions allowed, Rails' CSRF token; protect the mount
  #   mount AcidicJob::Web => "/acidic_job"
  #
  #   # config.ru (any Rack app): read-only unless told otherwise
  #   run AcidicJob::Web.new(database_url: ENV["DATABASE_URL"],
  #                          authorize: ->(request, action) { request.env["warden"]&.user&.admin? })
  #
  # AcidicJob::Web.configure { |c| c.read_only = true } sets up the app that
  # `mount AcidicJob::Web` (the class) serves.
  class Web
    # The one copy of the front end: web/ at the root of the repository and of the gem.
    ROOT = File.expand_path("../../../../web", __dir__)
    ACTIONS = %w[retry reset unlock discard bulk_retry bulk_discard drain].freeze
    CSRF_COOKIE = "acidic_job_csrf"
    SESSION_KEY = "acidic_job.csrf_token"
    MAX_IDS = 1000

    SECURITY_HEADERS = {
      "x-content-type-options" => "nosniff",
      "x-frame-options" => "DENY",
      "referrer-policy" => "same-origin",
      "content-security-policy" => "default-src 'none'; script-src 'self'; style-src 'self'; " \
                                   "img-src 'self'; connect-src 'self'; base-uri 'none'; " \
                                   "form-action 'self'; frame-ancestors 'none'"
    }.freeze
    TYPES = { ".html" => "text/html; charset=utf-8", ".js" => "text/javascript; charset=utf-8",
              ".css" => "text/css; charset=utf-8", ".svg" => "image/svg+xml",
              ".png" => "image/png" }.freeze

    # What the class serves when mounted as a class (mount AcidicJob::Web => "/path").
    Settings = Struct.new(:read_only, :authorize, :database_url, :lock_timeout, :poll_seconds,
                          :logger, keyword_init: true)

    # An error the API answers with its own status and code.
    class Refusal < StandardError
      attr_reader :status, :code

      def initialize(status, code, message)
        super(message)
        @status = status
        @code = code
      end
    end

    class << self
      def settings
        @settings ||= Settings.new
      end

      def configure
        yield settings
        @app = nil
        settings
      end

      def call(env)
        (@app ||= new(**settings.to_h.compact)).call(env)
      end
    end

    # read_only: true refuses every action; false allows them (subject to authorize);
    # nil (default): allowed in Rails or with an authorize hook, else read-only with a
    # warning. authorize: callable(Rack::Request, action) -> truthy to allow; action is
    # "read" or one of ACTIONS. database_url: a store of its own (else the application's
    # ActiveRecord connection, or AcidicJob.config.database_url). lock_timeout: the
    # workers' (seconds), for a store of its own.
    def initialize(read_only: nil, authorize: nil, database_url: nil, lock_timeout: nil,
                   poll_seconds: 5, logger: nil)
      @read_only = read_only
      @authorize = authorize
      @database_url = database_url
      @lock_timeout = lock_timeout
      @poll_seconds = poll_seconds
      @logger = logger
      @own_store = Mutex.new
      @warned = false
      @files = load_files
    end

    def call(env)
      request = Rack::Request.new(env)
      path = request.path_info.to_s
      return redirect("#{request.script_name}/") if path.empty?
      raise Refusal.new(403, "FORBIDDEN", "not authorized to read the dashboard") unless authorized?(request, "read")

      case path
      when "/" then file(request, "index.html")
      when %r{\A/assets/([^/]+)\z} then file(request, "assets/#{Regexp.last_match(1)}")
      when %r{\A/api/} then with_csrf_cookie(request, api(request, path.delete_prefix("/api/")))
      else raise Refusal.new(404, "NOT_FOUND", "no such page: the dashboard is at #{request.script_name}/")
      end
    rescue Refusal => e
      error_response(e.status, e.code, e.message)
    rescue AcidicJob::Error => e
      status, code = status_of(e)
      log.error("acidic_job web: #{e.class}: #{e.message}") if status == 500
      error_response(status, code, e.message)
    rescue StandardError => e
      log.error("acidic_job web: #{e.class}: #{e.message}\n#{Array(e.backtrace).first(10).join("\n")}")
      error_response(500, "AJ_ERROR", "internal error (#{e.class}); the server's log has the details")
    end

    private

    # --- files ------------------------------------------------------------------------

    # Read once: a request names an entry of this table, never a path on disk.
    def load_files
      files = {}
      index = File.join(ROOT, "index.html")
      files["index.html"] = File.binread(index)
      Dir.children(File.join(ROOT, "assets")).sort.each do |name|
        path = File.join(ROOT, "assets", name)
        files["assets/#{name}"] = File.binread(path) if File.file?(path) && TYPES.key?(File.extname(name))
      end
      files.freeze
    end

    def file(request, name)
      raise Refusal.new(405, "METHOD_NOT_ALLOWED", "#{request.request_method} is not allowed here") unless request.get? || request.head?

      body = @files[name] or raise Refusal.new(404, "NOT_FOUND", "no such file")
      headers = SECURITY_HEADERS.merge("content-type" => TYPES.fetch(File.extname(name)),
                                       "cache-control" => "no-cache")
      [200, headers, [request.head? ? "" : body]]
    end

    def redirect(location)
      [302, SECURITY_HEADERS.merge("location" => location, "content-type" => "text/plain"), ["#{location}\n"]]
    end

    # --- the API ----------------------------------------------------------------------

    def api(request, endpoint)
      if request.post?
        action(request, endpoint)
      elsif request.get? || request.head?
        with_admin { |admin| json(200, read(request, endpoint, admin)) }
      else
        raise Refusal.new(405, "METHOD_NOT_ALLOWED", "#{request.request_method} is not allowed here")
      end
    end

    def read(request, endpoint, admin)
      params = request.GET
      case endpoint
      when "config" then config(request, admin)
      when "stats" then admin.stats.as_json
      when "runs" then admin.list(**list_params(params)).as_json
      when %r{\Aruns/(\d+)\z} then detail(admin.show(Integer(Regexp.last_match(1), 10)))
      when "staged" then admin.staged(cursor: id_param(params, "cursor"), limit: limit_param(params)).as_json
      else raise Refusal.new(404, "NOT_FOUND", "no such endpoint: api/#{endpoint}")
      end
    end

    # Documents as text: JSON indented (attributes are already), anything else as stored.
    def detail(run)
      run.as_json.merge("job_args" => Admin.document_text(run.job_args))
    end

    def config(request, admin)
      actions = allowed_actions(request)
      {
        "read_only" => actions.empty?, "actions" => actions, "csrf_token" => csrf_token(request),
        "version" => AcidicJob::VERSION, "database" => database_name(admin),
        "poll_seconds" => @poll_seconds
      }
    end

    def action(request, endpoint)
      name = action_name(endpoint)
      raise Refusal.new(404, "NOT_FOUND", "no such endpoint: api/#{endpoint}") unless name
      raise Refusal.new(403, "READ_ONLY", "the dashboard is read-only") if read_only?(request.env)

      body = json_body(request)
      name = "bulk_#{body['action']}" if name == "bulk"
      raise Refusal.new(400, "AJ_EINVALID", "bulk action must be \"retry\" or \"discard\"") unless ACTIONS.include?(name)
      raise Refusal.new(403, "FORBIDDEN", "not authorized to #{name.tr('_', ' ')}") unless authorized?(request, name)
      raise Refusal.new(403, "CSRF", "missing or wrong X-CSRF-Token: reload the page") unless csrf_valid?(request)

      with_admin { |admin| json(200, perform(admin, name, endpoint, body)) }
    end

    def action_name(endpoint)
      case endpoint
      when %r{\Aruns/\d+/(retry|reset|unlock|discard)\z} then Regexp.last_match(1)
      when "bulk", "drain" then endpoint
      end
    end

    def perform(admin, name, endpoint, body)
      force = boolean(body, "force")
      case name
      when "retry"
        # enqueued: by the core (its resume job) or by AcidicJob::Admin (its job class)
        { "ok" => true, "run" => admin.retry(run_id(endpoint), force: force).as_json, "enqueued" => true }
      when "unlock", "discard"
        { "ok" => true, "run" => admin.public_send(name, run_id(endpoint), force: force).as_json }
      when "reset"
        step = body["step"]
        raise InvalidArgument, "reset needs \"step\": the name of a step" unless step.is_a?(String) && !step.empty?

        { "ok" => true, "run" => admin.reset(run_id(endpoint), step: step, force: force).as_json, "enqueued" => true }
      when "bulk_retry", "bulk_discard" then bulk(admin, name.delete_prefix("bulk_"), body)
      when "drain" then admin.drain(older_than: 0).as_json
      end
    end

    def run_id(endpoint)
      Integer(endpoint[%r{\Aruns/(\d+)/}, 1], 10)
    end

    # ids: each run on its own (what was skipped, and why, comes back); filter: the
    # core's bulk walk over every match.
    def bulk(admin, action, body)
      if body.key?("ids") == body.key?("filter")
        raise InvalidArgument, "bulk needs \"ids\" or \"filter\", not both"
      end
      return by_filter(admin, action, body["filter"]) if body.key?("filter")

      ids = body["ids"]
      unless ids.is_a?(Array) && ids.size <= MAX_IDS && ids.all? { |id| id.is_a?(Integer) && id.positive? }
        raise InvalidArgument, "\"ids\" must be a list of at most #{MAX_IDS} run ids"
      end

      changed = 0
      errors = []
      ids.uniq.each do |id|
        admin.public_send(action, id)
        changed += 1
      rescue StateError, LockedIdempotencyKey, NotFound => e
        errors << { "id" => id, "code" => status_of(e)[1], "message" => e.message }
      end
      { "changed" => changed, "skipped" => errors.size, "errors" => errors }
    end

    def by_filter(admin, action, filter)
      raise InvalidArgument, "\"filter\" must be an object" unless filter.is_a?(Hash)

      unknown = filter.keys - %w[state job key_prefix older_than since]
      raise InvalidArgument, "unknown filter #{unknown.join(', ')}" unless unknown.empty?

      params = list_params(filter.transform_values { |v| v.is_a?(Integer) ? v.to_s : v })
      params.delete(:order)
      result = admin.bulk(action.to_sym, filter: params)
      { "changed" => result.changed, "skipped" => result.skipped, "errors" => [] }
    end

    # Query parameters -> AcidicJob::Admin#list keywords, each checked; nothing else.
    def list_params(params)
      out = {}
      state = text_param(params, "state")
      out[:state] = state if state && !state.strip.empty?
      job = text_param(params, "job")
      out[:job] = job if job && !job.empty?
      prefix = text_param(params, "key_prefix")
      out[:key_prefix] = prefix if prefix && !prefix.empty?
      older = text_param(params, "older_than")
      if older && !older.empty?
        raise InvalidArgument, "older_than must be a whole number of seconds" unless older.match?(/\A\d{1,10}\z/)

        out[:older_than] = Integer(older, 10)
      end
      since = text_param(params, "since")
      out[:since] = since if since && !since.empty?
      cursor = id_param(params, "cursor")
      out[:cursor] = cursor if cursor
      limit = limit_param(params)
      out[:limit] = limit if limit
      order = text_param(params, "order")
      if order && !order.empty?
        raise InvalidArgument, "order must be desc or asc" unless %w[desc asc].include?(order)

        out[:order] = order.to_sym
      end
      out
    end

    def text_param(params, name)
      value = params[name]
      return nil if value.nil?
      raise InvalidArgument, "#{name} must be a single text value" unless value.is_a?(String)
      raise InvalidArgument, "#{name} is not valid UTF-8" unless value.dup.force_encoding(Encoding::UTF_8).valid_encoding?

      value.dup.force_encoding(Encoding::UTF_8)
    end

    def id_param(params, name)
      value = text_param(params, name)
      return nil if value.nil? || value.empty?
      raise InvalidArgument, "#{name} must be a run or row id" unless value.match?(/\A[1-9]\d{0,18}\z/)

      Integer(value, 10)
    end

    def limit_param(params)
      value = text_param(params, "limit")
      return nil if value.nil? || value.empty?
      raise InvalidArgument, "limit must be a number from 1 to 1000" unless value.match?(/\A\d{1,4}\z/) && (1..1000).cover?(Integer(value, 10))

      Integer(value, 10)
    end

    def boolean(body, name)
      value = body.fetch(name, false)
      raise InvalidArgument, "\"#{name}\" must be true or false" unless [true, false].include?(value)

      value
    end

    def json_body(request)
      type = request.media_type.to_s.downcase
      raise Refusal.new(400, "AJ_EINVALID", "send the body as application/json") unless type == "application/json"

      text = request.body&.read(1_000_000).to_s
      body = text.strip.empty? ? {} : JSON.parse(text)
      raise InvalidArgument, "the body must be a JSON object" unless body.is_a?(Hash)

      body
    rescue JSON::ParserError => e
      raise InvalidArgument, "the body is not JSON: #{e.message[0, 120]}"
    end

    # --- the store --------------------------------------------------------------------

    def with_admin(&block)
      if @database_url
        # one store of its own, used by one request at a time
        @own_store.synchronize do
          @admin ||= Admin.connect(@database_url, lock_timeout: @lock_timeout || AcidicJob.config.lock_timeout)
          block.call(@admin)
        end
      elsif AcidicJob.config.database_url
        block.call(Admin.new)
      else
        # the application's ActiveRecord connection, returned to the pool afterwards
        AcidicJob::Key.connection_pool.with_connection { block.call(Admin.new) }
      end
    end

    def database_name(admin)
      driver = admin.store.driver.to_s
      return "postgres" if driver.match?(/pg|postgres/i)
      return "sqlite" if driver.match?(/sqlite/i)

      AcidicJob::Key.connection.adapter_name.match?(/postg/i) ? "postgres" : "sqlite"
    end

    # --- who may do what --------------------------------------------------------------

    def rails?(env)
      env.key?("action_dispatch.secret_key_base") && defined?(::ActionController::Base)
    end

    def read_only?(env)
      return @read_only unless @read_only.nil?
      return false if @authorize || rails?(env)

      unless @warned
        @warned = true
        log.warn("acidic_job web: read-only: no authorize hook outside Rails. Pass " \
                 "AcidicJob::Web.new(authorize: ->(request, action) { ... }) or read_only: false to allow actions.")
      end
      true
    end

    def authorized?(request, action)
      return true unless @authorize

      @authorize.call(request, action) ? true : false
    end

    def allowed_actions(request)
      return [] if read_only?(request.env)

      ACTIONS.select { |a| authorized?(request, a) }
    end

    # --- CSRF -------------------------------------------------------------------------
    # Rails: Rails' own token (masked per page, checked by Rails). Rack with a session: a
    # token in the session. Otherwise: a double-submit cookie (SameSite=Strict, HttpOnly).

    def csrf_token(request)
      if rails?(request.env)
        rails_controller(request.env).send(:form_authenticity_token)
      elsif (session = request.env["rack.session"])
        session[SESSION_KEY] ||= SecureRandom.urlsafe_base64(32)
      else
        token = request.cookies[CSRF_COOKIE]
        token = nil unless token.is_a?(String) && token.match?(/\A[A-Za-z0-9_-]{43}\z/)
        request.env["acidic_job.set_csrf_cookie"] = token ||= SecureRandom.urlsafe_base64(32)
        token
      end
    end

    def csrf_valid?(request)
      given = request.get_header("HTTP_X_CSRF_TOKEN")
      return false unless given.is_a?(String) && !given.empty?

      if rails?(request.env)
        controller = rails_controller(request.env)
        controller.send(:valid_authenticity_token?, controller.session, given)
      elsif (session = request.env["rack.session"])
        expected = session[SESSION_KEY]
        expected.is_a?(String) && Rack::Utils.secure_compare(expected, given)
      else
        expected = request.cookies[CSRF_COOKIE]
        expected.is_a?(String) && !expected.empty? && Rack::Utils.secure_compare(expected, given)
      end
    end

    # The double-submit cookie csrf_token chose, on the answer that hands out its token.
    def with_csrf_cookie(request, response)
      token = request.env["acidic_job.set_csrf_cookie"]
      return response unless token && request.cookies[CSRF_COOKIE] != token

      Rack::Utils.set_cookie_header!(response[1], CSRF_COOKIE,
                                     value: token, path: "#{request.script_name}/", httponly: true,
                                     same_site: :strict, secure: request.ssl?)
      response
    end

    def rails_controller(env)
      env["acidic_job.rails_controller"] ||= ::ActionController::Base.new.tap do |c|
        c.set_request!(::ActionDispatch::Request.new(env))
      end
    end

    # --- answers ----------------------------------------------------------------------

    def json(status, doc)
      [status, SECURITY_HEADERS.merge("content-type" => "application/json; charset=utf-8",
                                      "cache-control" => "no-store"), [JSON.generate(doc)]]
    end

    def error_response(status, code, message)
      json(status, { "error" => { "code" => code.to_s, "message" => message.to_s.scrub } })
    end

    STATUS = {
      AJ_EINVALID: 400, AJ_ENOTFOUND: 404, AJ_ELOCKED: 409, AJ_ESTATE: 409,
      AJ_EUNKNOWN_RECOVERY_POINT: 409
    }.freeze
    CLASS_CODES = {
      "AcidicJob::InvalidArgument" => :AJ_EINVALID, "AcidicJob::NotFound" => :AJ_ENOTFOUND,
      "AcidicJob::LockedIdempotencyKey" => :AJ_ELOCKED, "AcidicJob::StateError" => :AJ_ESTATE,
      "AcidicJob::UnknownRecoveryPoint" => :AJ_EUNKNOWN_RECOVERY_POINT
    }.freeze

    def status_of(error)
      code = error.code || CLASS_CODES[error.class.name] || :AJ_ERROR
      [STATUS.fetch(code.to_sym, 500), code.to_s]
    end

    def log
      @logger || AcidicJob.config.logger
    end
  end
end
