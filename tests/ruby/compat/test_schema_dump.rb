# frozen_string_literal: true

require_relative "test_helper"

# `rails db:schema:dump` after the upgrade, then `rails db:schema:load`.
class SchemaDumpTest < ActiveSupport::TestCase
  setup do
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")
    @params = { "origin" => "Neukölln", "target" => "Pankow" }
  end

  def ride_once
    assert_equal true, RideCreateJob.perform_now(@user.id, @params)
    perform_enqueued_jobs
    assert AcidicJob::Key.last.succeeded?
    assert_equal 0, AcidicJob::Staged.count
  end

  test "a schema.rb dumped after the upgrade loads back and dumps the same" do
    ride_once
    first_dump = StringIO.new
    ActiveRecord::SchemaDumper.dump(ActiveRecord::Base.connection, first_dump)

    Dir.mktmpdir do |dir|
      path = File.join(dir, "schema.rb")
      File.write(path, first_dump.string)
      load path
    end
    second_dump = StringIO.new
    ActiveRecord::SchemaDumper.dump(ActiveRecord::Base.connection, second_dump)

    assert_equal first_dump.string, second_dump.string
    assert_includes first_dump.string, 'create_table "acidic_job_keys"'
    @user = User.create!(email: "schema@example.com", stripe_customer_id: "cus_schema")
    ride_once
  end
end
