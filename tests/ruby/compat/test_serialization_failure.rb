# frozen_string_literal: true

require_relative "test_helper"

class ChargeRideJob < ActiveJob::Base
  include AcidicJob

  def perform(ride_id)
    idempotently with: { ride_id: ride_id } do
      step :charge
    end
  end

  def charge
    ride = Ride.find(@ride_id)
    ride.update!(stripe_charge_id: Stripe.charge(amount: 5_00, customer: "cus_s").id)
  end
end

# A job performed inside the application's own SERIALIZABLE transaction, whose step
# writes a row that another connection changed after that transaction's snapshot.
class SerializationFailureTest < ActiveSupport::TestCase
  setup do
    skip "PostgreSQL reports serialization failures (SQLite serializes writers)" unless postgres?
    @ride = User.create!(email: "s@example.com").rides.create!(origin: "Tiergarten")
  end

  test "a serialization failure in a step reaches the caller, rolls back with it, and a retry runs the step again" do
    job = ChargeRideJob.new(@ride.id)

    assert_raises(ActiveRecord::SerializationFailure) do
      ActiveRecord::Base.transaction(isolation: :serializable) do
        Ride.find(@ride.id) # the snapshot
        Thread.new do
          ActiveRecord::Base.connection_pool.with_connection do
            Ride.where(id: @ride.id).update_all(target: "changed elsewhere")
          end
        end.join
        job.perform_now
      end
    end
    assert_nil @ride.reload.stripe_charge_id
    assert_equal 0, AcidicJob::Key.count, "the key was written in the transaction that rolled back"

    assert_equal true, job.perform_now
    assert_equal 2, Stripe.charges.size, "the payment call is outside the database: it ran in both attempts"
    assert_equal "ch_2", @ride.reload.stripe_charge_id
    assert_equal "changed elsewhere", @ride.target
    assert AcidicJob::Key.last.succeeded?
  end
end
